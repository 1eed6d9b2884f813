"""The Domino REST API (DRAPI) requests of the password sync flow, as pure functions."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from adsync.plugin import Outcome, Secret
from adsync.plugin.http import is_transient

from .config import DominoConfig

AUTH_PATH = "/api/v1/auth"
QUERY_PATH = "/api/v1/query"
DOCUMENT_PATH = "/api/v1/document"


def auth_body(username: str, password: Secret) -> bytes:
    return json.dumps({"username": username, "password": password.reveal()}).encode()


def directory_query(config: DominoConfig, *, by_account: bool) -> str:
    """DQL over the directory scope; the value is passed as a variable, never spliced in."""
    item = config.directory.account_item if by_account else config.directory.guid_item
    form = config.directory.form.replace("'", "''")
    return f"Form = '{form}' and {item} = ?value"


def query_body(dql: str, value: str) -> bytes:
    return json.dumps(
        {
            "query": dql,
            "variables": {"value": value},
            "maxScanDocs": 500000,
            "maxScanEntries": 200000,
            "timeoutSecs": 30,
        }
    ).encode()


def guid_text(value: Any) -> str | None:
    """The objectGUID as Domino's directory stores it (a string; first value of a list)."""
    if isinstance(value, list):
        value = value[0] if value else None
    return value if isinstance(value, str) and value else None


def request_document(
    config: DominoConfig,
    guid: str,
    account: str,
    event_id: str,
    password: Secret,
    changed_at: datetime,
) -> bytes:
    fields = config.request.fields
    expires = changed_at + timedelta(seconds=config.retry.expire_after)
    document: dict[str, Any] = {
        "Form": config.request.form,
        fields.guid: guid,
        fields.account: account,
        fields.event_id: event_id,
        fields.password_types: config.password_types,
        fields.expires: expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
        fields.password: password.reveal(),
    }
    encryption = config.request.encryption
    if encryption is not None:
        # DRAPI encrypts the items whose form-mode field has the Encrypt option, for
        # these users/keys (docs/references/usingdominorestapi/encryptsign.md).
        meta: dict[str, list[str]] = {}
        if encryption.users:
            meta["users"] = list(encryption.users)
        if encryption.keys:
            meta["keys"] = list(encryption.keys)
        document["@encryption"] = meta
    return json.dumps(document, ensure_ascii=False).encode("utf-8")


def classify_error(status: int, document: Any, what: str) -> tuple[bool, Outcome]:
    """(try the next server?, outcome) for a non-success DRAPI answer.

    5xx, 408, 429: this server's trouble, the next one may take it. Any other 4xx is a
    configuration problem (credentials, scope, schema, form mode, encryption): failed,
    and the backend shows as misconfigured.
    """
    message = ""
    if isinstance(document, dict):
        message = str(document.get("message") or "")[:300]
    text = f"{what}: HTTP {status}" + (f" {message}" if message else "")
    if is_transient(status):
        return True, Outcome.unreachable(text)
    return False, Outcome.configuration(text)
