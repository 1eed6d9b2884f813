"""The webhook wire format, without I/O: request bodies, the signature, and what a
response means. Kept pure so each rule is tested without a socket or a clock."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable
from datetime import UTC, datetime

from adsync.plugin import Candidate, Change, CheckResult, Outcome, scrub
from adsync.plugin.http import AUTH_OR_URL_STATUSES

SIGNATURE_HEADER = "X-Adsync-Signature"
EVENT_ID_HEADER = "X-Adsync-Event-Id"
MAX_REASON = 200


def iso_utc_ms(epoch_ms: int) -> str:
    """``2023-11-14T22:13:20.000Z`` from integer milliseconds (no float rounding)."""
    seconds, millis = divmod(epoch_ms, 1000)
    stamp = datetime.fromtimestamp(seconds, tz=UTC).isoformat()  # ...T22:13:20+00:00
    return f"{stamp[:-6]}.{millis:03d}Z"


def _dumps(body: dict[str, object]) -> bytes:
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def change_body(change: Change) -> bytes:
    """The exact bytes POSTed for a change: compact UTF-8 JSON, unknown fields omitted."""
    body: dict[str, object] = {
        "event_id": change.event_id_hex,
        "account": change.account,
        "domain": change.domain,
        "password": change.password.reveal(),
        "changed_at": iso_utc_ms(change.changed_at_ms),
    }
    if change.source_host:
        body["source_host"] = change.source_host
    if change.rid is not None:
        body["rid"] = change.rid
    if change.object_guid is not None:
        body["object_guid"] = str(change.object_guid)
    return _dumps(body)


def check_body(candidate: Candidate) -> bytes:
    return _dumps(
        {
            "account": candidate.account,
            "domain": candidate.domain,
            "password": candidate.password.reveal(),
            "full_name": candidate.full_name,
            "set_operation": candidate.set_operation,
        }
    )


def signature(key: bytes, body: bytes) -> str:
    """The X-Adsync-Signature value: ``sha256=`` and the hex HMAC-SHA256 of the body."""
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def reason_from_body(body: bytes, secrets: Iterable[str]) -> str:
    """The target's ``{"reason": …}`` if it sent one, scrubbed; else empty."""
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return ""
    reason = data.get("reason") if isinstance(data, dict) else None
    return scrub(reason, *secrets, max_len=MAX_REASON) if isinstance(reason, str) else ""


def delivery_outcome(status: int, retry_after: float | None, target_reason: str = "") -> Outcome:
    """The contract's status mapping (target_reason is already scrubbed)."""
    label = f"HTTP {status}" + (f": {target_reason}" if target_reason else "")
    if 200 <= status < 300:
        return Outcome.delivered(f"HTTP {status}")
    if status == 404:
        return Outcome.unknown_user(label)
    if status in (409, 422):
        return Outcome.rejected(label, retry_after)
    if status in (408, 429) or 500 <= status < 600:
        return Outcome.unreachable(label, retry_after)
    return Outcome.failed(label, misconfigured=status in AUTH_OR_URL_STATUSES)


def check_result(status: int, target_reason: str) -> CheckResult:
    """200 accept; 422 reject with the target's reason; anything else undecided."""
    if status == 200:
        return CheckResult.accept()
    if status == 422:
        return CheckResult.reject(target_reason or "rejected by the webhook policy check")
    return CheckResult.undecided(f"HTTP {status}")
