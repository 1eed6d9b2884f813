"""A SCIM 2.0 service provider's /Users search and PATCH (RFC 7644).

Answers ListResponse for ``filter=userName eq "…"`` (attribute and operator names
case-insensitive, §3.4.2.2; no match is 200 with ``totalResults: 0``, §3.4.2), applies a
PatchOp that replaces ``password`` (204, or 200 with the resource when
``return_resource``, §3.5.2), and error bodies with the Error schema (``status`` as a
string, §3.12). Any other path is 404 with a SCIM Error ("endpoint does not exist",
§3.12): that is what a wrong base path or a deleted tenant looks like.
``GET /ServiceProviderConfig`` (§4) answers the provider's features without a token (as
scim2-server does); ``GET /Users`` without a filter lists every user, ``count`` capping
the page (§3.4.2, §3.4.2.4: ``count=0`` gives only ``totalResults``).
``patch_error = (status, scimType, detail)`` makes the PATCH of a found user answer that
error (e.g. 409 ``uniqueness``, §3.12).
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from aiohttp import web

from .fake import FakeTarget, Mode, sha256_hex

MEDIA_TYPE = "application/scim+json"
_FILTER = re.compile(r'^(?P<attr>[A-Za-z][\w.:$-]*) (?i:eq) (?P<value>"(?:[^"\\]|\\.)*")$')


class FakeScim(FakeTarget):
    def __init__(
        self,
        *,
        users: list[str] | None = None,
        token: str = "scim-token",  # noqa: S107 (a fake)
        base_path: str = "/scim/v2",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.token = token
        self.base_path = base_path
        self.users = {name: str(uuid.uuid5(uuid.NAMESPACE_URL, name)) for name in users or ["jdoe"]}
        self.return_resource = False
        self.passwords: dict[str, str] = {}  # id -> sha256 of the current password
        self.patch_error: tuple[int, str | None, str] | None = None

    @property
    def base_url(self) -> str:
        return self.url + self.base_path

    def routes(self, app: web.Application) -> None:
        app.router.add_get(self.base_path + "/Users", self._search)
        app.router.add_patch(self.base_path + "/Users/{id}", self._patch)
        app.router.add_get(self.base_path + "/ServiceProviderConfig", self._config)
        app.router.add_route("*", "/{tail:.*}", self._no_endpoint)

    async def _no_endpoint(self, request: web.Request) -> web.Response:
        self.record(request, b"", operation="no_endpoint")
        return _error(404, None, f"endpoint {request.path} does not exist")

    def _authorized(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {self.token}"

    async def _config(self, request: web.Request) -> web.Response:
        """RFC 7644 §4 / RFC 7643 §5: the provider's features; PATCH on, filter on.
        Discovery needs no token here, as on scim2-server."""
        self.record(request, b"", operation="service_provider_config")
        document = {
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
            "patch": {"supported": True},
            "bulk": {"supported": False, "maxOperations": 0, "maxPayloadSize": 0},
            "filter": {"supported": True, "maxResults": 100},
            "changePassword": {"supported": True},
            "sort": {"supported": False},
            "etag": {"supported": False},
            "authenticationSchemes": [
                {"type": "oauthbearertoken", "name": "OAuth Bearer Token", "description": ""}
            ],
        }
        return _json(200, document)

    async def _search(self, request: web.Request) -> web.Response:
        await self.gate()
        received = self.record(request, b"", operation="search")
        if not self._authorized(request):
            return _error(401, None, "authentication required")
        if "filter" not in request.query:  # §3.4.2: no filter is every resource; count caps
            received.operation = "list"
            count = _count(request.query.get("count"), len(self.users))
            return _json(
                200,
                _list_response(len(self.users), [])
                if count == 0
                else _list_response(
                    len(self.users),
                    [{"id": i, "userName": n} for n, i in list(self.users.items())[:count]],
                ),
            )
        match = _FILTER.match(request.query.get("filter", ""))
        if match is None:
            received.valid, received.problem = False, "unsupported filter"
            return _error(400, "invalidFilter", "unsupported filter")
        value = json.loads(match["value"])
        received.account = value
        found = self.mode is not Mode.UNKNOWN_USER and match["attr"].lower() == "username"
        ids = [self.users[value]] if found and value in self.users else []
        document = {
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
            "totalResults": len(ids),
            "startIndex": 1,
            "itemsPerPage": len(ids),
            "Resources": [
                {
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                    "id": i,
                    "userName": value,
                }
                for i in ids
            ],
        }
        return _json(200, document)

    async def _patch(self, request: web.Request) -> web.Response:
        await self.gate()
        body = await request.read()
        received = self.record(request, body, operation="patch")
        if not self._authorized(request):
            return _error(401, None, "authentication required")
        if request.headers.get("Content-Type", "").split(";")[0] != MEDIA_TYPE:
            received.valid, received.problem = False, "Content-Type is not application/scim+json"
        try:
            op = json.loads(body)
            (operation,) = op["Operations"]
            assert op["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:PatchOp"]
            assert operation["op"].lower() == "replace" and operation["path"] == "password"
            password = operation["value"]
            assert isinstance(password, str)
        except (ValueError, KeyError, TypeError, AssertionError):
            received.valid, received.problem = False, "not a PatchOp replacing password"
            return _error(400, "invalidSyntax", "expected a PatchOp replacing password")
        received.password_sha256 = sha256_hex(password)
        user_id = request.match_info["id"]
        if self.mode is Mode.UNKNOWN_USER or user_id not in self.users.values():
            return _error(404, None, f"Resource {user_id} not found")
        received.account = next(k for k, v in self.users.items() if v == user_id)
        if self.mode is Mode.REJECT:
            return _error(400, "invalidValue", self.reject_reason)
        if self.patch_error is not None:
            return _error(*self.patch_error)
        self.passwords[user_id] = received.password_sha256
        if self.return_resource:
            return _json(
                200,
                {
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                    "id": user_id,
                    "userName": received.account,
                },
            )
        return web.Response(status=204)


def _count(raw: str | None, default: int) -> int:
    """§3.4.2.4: ``count`` is a non-negative integer; a negative value is 0."""
    if raw is None:
        return default
    try:
        return max(0, int(raw))
    except ValueError:
        return default


def _list_response(total: int, resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
        "totalResults": total,
        "startIndex": 1,
        "itemsPerPage": len(resources),
        "Resources": [
            {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], **r} for r in resources
        ],
    }


def _json(status: int, document: Any) -> web.Response:
    return web.Response(
        status=status, body=json.dumps(document).encode(), headers={"Content-Type": MEDIA_TYPE}
    )


def _error(status: int, scim_type: str | None, detail: str) -> web.Response:
    document: dict[str, Any] = {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
        "status": str(status),
        "detail": detail,
    }
    if scim_type:
        document["scimType"] = scim_type
    return _json(status, document)


__all__ = ["FakeScim"]
