"""SCIM 2.0 (RFC 7643/7644) as pure functions: the filter, the PatchOp, the error mapping."""

from __future__ import annotations

import json
from typing import Any

from adsync.plugin import Outcome, Secret
from adsync.plugin.http import AUTH_OR_URL_STATUSES, is_transient
from adsync.secret import scrub

LIST_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ERROR = "urn:ietf:params:scim:api:messages:2.0:Error"
MEDIA_TYPE = "application/scim+json"
DETAIL_MAX = 300  # characters of a target's error detail kept in a reason

NO_ENDPOINT = (
    "the SCIM endpoint does not exist (HTTP 404 on the user search, RFC 7644 §3.12): "
    "check the backend's url (base path, tenant)"
)


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


def find_id(
    status: int,
    document: Any,
    *secrets: Secret | None,
    retry_after: float | None = None,
) -> tuple[str | None, Outcome | None]:
    """The user's id from a ListResponse, or the outcome that ends the delivery.

    A search that matches nobody is ``200`` with ``totalResults: 0`` (RFC 7644 §3.4.2);
    a 404 on the search itself means the endpoint or tenant does not exist (§3.12):
    a configuration error, failed at once, not an unknown user retried for an hour.
    """
    if status == 404:
        return None, Outcome.configuration(NO_ENDPOINT)
    if status != 200:
        return None, classify_error(status, document, *secrets, retry_after=retry_after)
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


def classify_patch(
    status: int, document: Any, *secrets: Secret | None, retry_after: float | None = None
) -> Outcome:
    """The PATCH of a found user: a 404 here means the user went away (unknown_user)."""
    if status in (200, 204):
        return Outcome.delivered(f"HTTP {status}")
    if status == 404:
        return Outcome.unknown_user(error_text(status, document, *secrets))
    return classify_error(status, document, *secrets, retry_after=retry_after)


def error_text(status: int, document: Any, *secrets: Secret | None) -> str:
    """``HTTP 400 invalidValue: <detail>``; the detail is scrubbed of ``secrets`` (the
    password, the token) before it is cut, so no part of a secret survives the cut."""
    detail = ""
    scim_type = ""
    if isinstance(document, dict):
        detail = scrub(str(document.get("detail") or ""), *secrets, max_len=DETAIL_MAX)
        scim_type = scrub(str(document.get("scimType") or ""), *secrets, max_len=40)
    return (
        f"HTTP {status}"
        + (f" {scim_type}" if scim_type else "")
        + (f": {detail}" if detail else "")
    )


def classify_error(
    status: int, document: Any, *secrets: Secret | None, retry_after: float | None = None
) -> Outcome:
    """RFC 7644 §3.12 by status; ``scimType`` refines 400 (``invalidValue``: the password
    does not satisfy the target's policy, rejected)."""
    text = error_text(status, document, *secrets)
    scim_type = document.get("scimType") if isinstance(document, dict) else None
    if status == 400 and scim_type == "invalidValue":
        return Outcome.rejected(text)
    if status == 409:  # §3.12 uniqueness: the same request conflicts again; not an outage
        return Outcome.failed(f"{text} (a uniqueness conflict on the target: permanent)")
    if is_transient(status):
        return Outcome.unreachable(text, retry_after)
    if status in AUTH_OR_URL_STATUSES:  # the token, its scope or the url: an operator acts
        hint = "token" if status in (401, 403, 407) else "url"
        return Outcome.configuration(f"{text} (check the {hint})")
    return Outcome.failed(text)
