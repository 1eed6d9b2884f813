"""A Domino REST API (DRAPI, v1) server with a directory scope and a request database scope.

``POST /api/v1/auth`` returns an AuthResult (bearer JWT-like token);
``POST /api/v1/query?dataSource=&action=execute`` runs the directory lookup
(``Form = 'Person' and <item> = ?value``); ``POST /api/v1/document?dataSource=``
creates a document (``Form`` required, only configured forms and fields), 200
with ``@meta.unid`` (32 upper-case hex). Errors use DRAPI's ErrorMessage.

Encryption follows HCL-TECH-SOFTWARE/Domino-rest-api
``docs/references/usingdominorestapi/encryptsign.md`` (v1.1.0+): fields whose form mode
has the **Encrypt** option (``encrypted_fields``, by default the password item) need an
``@encryption`` object (``keys``/``users`` string lists, optional ``options``) in the
payload, else error E1130; the fake stores only a digest and whom the item was encrypted
for. The HTTP status of E1130 is not documented [inferred: 400].
"""

from __future__ import annotations

import json
import re
import secrets
import uuid
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from .fake import FakeTarget, Mode, sha256_hex

_DQL = re.compile(r"^Form = '(?P<form>(?:[^']|'')*)' and (?P<item>[A-Za-z_$][\w$]*) = \?value$")
REQUEST_FIELDS = {
    "ADObjectGUID",
    "NewPassword",
    "PasswordTypes",
    "ExpiresAt",
    "SAMAccountName",
    "EventID",
}


class FakeDomino(FakeTarget):
    """People are ``{sAMAccountName: objectGUID}``; requests land in ``documents``."""

    def __init__(
        self,
        *,
        username: str = "adsync",
        password: str = "domino-secret",  # noqa: S107
        people: dict[str, uuid.UUID] | None = None,
        directory_scope: str = "names",
        request_scope: str = "adpwsync",
        request_form: str = "ADPasswordChangeRequest",
        request_fields: set[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.username = username
        self.password = password
        self.people = (
            people
            if people is not None
            else {"jdoe": uuid.UUID("abf599a2-49c1-4d58-afa1-7cf29a54d1a7")}
        )
        self.directory_scope = directory_scope
        self.request_scope = request_scope
        self.request_form = request_form
        self.request_fields = request_fields if request_fields is not None else REQUEST_FIELDS
        self.documents: list[dict[str, Any]] = []  # created requests, password as a digest
        self.encrypted_fields: set[str] = {"NewPassword"}
        self.tokens: set[str] = set()

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/api/v1/auth", self._auth)
        app.router.add_post("/api/v1/query", self._query)
        app.router.add_post("/api/v1/document", self._document)

    def expire_tokens(self) -> None:
        self.tokens.clear()

    async def _auth(self, request: web.Request) -> web.Response:
        await self.gate()
        body = await request.read()
        self.record(request, body, operation="auth")
        try:
            credentials = json.loads(body)
        except ValueError:
            return _error(400, "Invalid JSON")
        if set(credentials) - {"username", "password", "scope"}:
            return _error(400, "Unknown property in BasicAuthRequest")
        if (
            credentials.get("username") != self.username
            or credentials.get("password") != self.password
        ):
            return _error(401, "Invalid credentials or account locked")
        token = "eyJ" + secrets.token_urlsafe(32)
        self.tokens.add(token)
        return _json(
            200,
            {
                "bearer": token,
                "claims": {"iss": "Domino", "sub": "CN=adsync/O=Org", "scopes": "MAIL $DATA"},
                "leeway": 5,
                "expSeconds": 21600,
                "issueDate": datetime.now(UTC).isoformat(),
            },
        )

    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        return header.startswith("Bearer ") and header[7:] in self.tokens

    async def _query(self, request: web.Request) -> web.Response:
        await self.gate()
        body = await request.read()
        received = self.record(request, body, operation="query")
        if not self._authorized(request):
            return _error(401, "Bearer token missing or invalid")
        if request.query.get("dataSource") != self.directory_scope:
            return _error(404, "Scope not found")
        if request.query.get("action") != "execute":
            return _error(400, "action must be execute")
        try:
            query = json.loads(body)
            match = _DQL.match(query["query"])
            value = query["variables"]["value"]
        except (ValueError, KeyError, TypeError):
            received.valid, received.problem = False, "not a supported DQL query"
            return _error(400, "DQL syntax error")
        if match is None or match["form"] != "Person":
            received.valid, received.problem = False, "not a Person lookup"
            return _error(400, "DQL syntax error")
        item = match["item"]
        found: list[dict[str, Any]] = []
        if self.mode is not Mode.UNKNOWN_USER:
            for account, guid in self.people.items():
                if (item == "ADObjectGUID" and str(guid) == value) or (
                    item == "ShortName" and account == value
                ):
                    found.append(
                        {
                            "@meta": {"unid": _unid(), "noteid": 2310},
                            "Form": "Person",
                            "ShortName": account,
                            "ADObjectGUID": str(guid),
                        }
                    )
        received.account = found[0]["ShortName"] if found else None
        return _json(200, found)

    async def _document(self, request: web.Request) -> web.Response:
        await self.gate()
        body = await request.read()
        received = self.record(request, body, operation="create")
        if not self._authorized(request):
            return _error(401, "Bearer token missing or invalid")
        if request.query.get("dataSource") != self.request_scope:
            return _error(404, "Scope not found")
        if request.headers.get("Content-Type", "").split(";")[0] != "application/json":
            return _error(400, "Content-Type must be application/json")
        try:
            document = json.loads(body)
        except ValueError:
            return _error(400, "Invalid JSON")
        if not isinstance(document, dict) or "Form" not in document:
            received.valid, received.problem = False, "no Form"
            return _error(400, "Form is required")
        if document["Form"] != self.request_form:
            return _error(403, f"Form {document['Form']} is not configured in the schema")
        encryption = document.pop("@encryption", None)
        if self.encrypted_fields & set(document) and encryption is None:
            received.valid, received.problem = False, "no @encryption for encrypted fields"
            return _error(
                400,
                "E1130, This form mode requires encryption but no @encryption payload was provided",
            )
        if encryption is not None and not _valid_encryption(encryption):
            received.valid, received.problem = False, "malformed @encryption"
            return _error(400, "Invalid @encryption payload")
        unknown = set(document) - {"Form"} - self.request_fields
        if unknown:
            return _error(403, f"Fields not configured for this form: {sorted(unknown)}")
        secret_items = {"NewPassword"} | self.encrypted_fields  # never kept in clear
        password = next((document[k] for k in sorted(secret_items) if k in document), None)
        received.password_sha256 = sha256_hex(password) if isinstance(password, str) else None
        guid = document.get("ADObjectGUID")
        received.account = next((a for a, g in self.people.items() if str(g) == guid), None)
        stored = {k: v for k, v in document.items() if k not in secret_items}
        stored["NewPassword.sha256"] = received.password_sha256
        if encryption is not None and self.encrypted_fields & set(document):
            stored["@encrypted_for"] = {
                "users": encryption.get("users", []),
                "keys": encryption.get("keys", []),
                "items": sorted(self.encrypted_fields & set(document)),
            }
        unid = _unid()
        self.documents.append({**stored, "@unid": unid})
        now = datetime.now(UTC).isoformat()
        meta = {
            "noteid": 44026,
            "unid": unid,
            "created": now,
            "lastmodified": now,
            "noteclass": ["DATA", "DOCUMENT"],
            "unread": True,
            "revision": "00000001",
            "size": len(body),
        }
        return _json(
            200, {**{k: v for k, v in document.items() if k not in secret_items}, "@meta": meta}
        )


def _valid_encryption(value: Any) -> bool:
    if not isinstance(value, dict) or set(value) - {"keys", "users", "options"}:
        return False
    return all(isinstance(v, list) and all(isinstance(x, str) for x in v) for v in value.values())


def _unid() -> str:
    return secrets.token_hex(16).upper()


def _json(status: int, document: Any) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps(document).encode(),
        headers={"Content-Type": "application/json"},
    )


def _error(status: int, message: str) -> web.Response:
    return _json(status, {"status": status, "message": message})


__all__ = ["REQUEST_FIELDS", "FakeDomino"]
