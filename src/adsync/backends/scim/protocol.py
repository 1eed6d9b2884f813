"""SCIM 2.0 (RFC 7643/7644) as pure functions: the filter, the PatchOp, the error mapping."""

from __future__ import annotations

import json
from typing import Any

from adsync.plugin import Outcome, Secret

LIST_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
MEDIA_TYPE = "application/scim+json"


def user_filter(attribute: str, value: str) -> str:
    """``userName eq "jdoe"``: the value is a JSON string (RFC 7644 §3.4.2.2), quotes escaped."""
    return f"{attribute} eq {json.dumps(value, ensure_ascii=False)}"


def patch_body(password: Secret) -> bytes:
    """The PatchOp replacing ``password`` (RFC 7644 §3.5.2.3)."""
    op = {
        "schemas": [PATCH_OP],
        "Operations": [{"op": "replace", "path": "password", "value": password.reveal()}],
    }
    return json.dumps(op, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def find_id(status: int, document: Any) -> tuple[str | None, Outcome | None]:
    """The user's id from a ListResponse, or the outcome that ends the delivery."""
    if status != 200:
        return None, classify_error(status, document)
    if not isinstance(document, dict) or not isinstance(document.get("Resources", []), list):
        return None, Outcome.failed("the search answer is not a SCIM ListResponse")
    resources = document.get("Resources") or []
    total = document.get("totalResults", len(resources))
    if total == 0 or not resources:
        return None, Outcome.unknown_user("no SCIM user matches")
    if total > 1 or len(resources) > 1:
        return None, Outcome.failed(f"{total} SCIM users match; expected one")
    user_id = resources[0].get("id") if isinstance(resources[0], dict) else None
    if not isinstance(user_id, str) or not user_id:
        return None, Outcome.failed("the matching SCIM user has no id")
    return user_id, None


def classify_patch(status: int, document: Any) -> Outcome:
    if status in (200, 204):
        return Outcome.delivered(f"HTTP {status}")
    return classify_error(status, document)


def classify_error(status: int, document: Any, retry_after: float | None = None) -> Outcome:
    """RFC 7644 §3.12: ``scimType`` refines 400; the rest goes by status."""
    detail = ""
    scim_type = ""
    if isinstance(document, dict):
        detail = str(document.get("detail") or "")[:300]
        scim_type = str(document.get("scimType") or "")
    text = (
        f"HTTP {status}"
        + (f" {scim_type}" if scim_type else "")
        + (f": {detail}" if detail else "")
    )
    if status == 400 and scim_type == "invalidValue":
        return Outcome.rejected(text)
    if status == 404:
        return Outcome.unknown_user(text)
    if status in (408, 429) or status >= 500:
        return Outcome.unreachable(text, retry_after)
    if status == 409:
        return Outcome.unreachable(text)  # a concurrent change: try again later
    return Outcome.failed(text)
