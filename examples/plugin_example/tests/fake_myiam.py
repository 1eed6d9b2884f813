# file: tests/fake_myiam.py
"""A strict fake of MyIAM's password API on 127.0.0.1, for the contract kit."""

from __future__ import annotations

import json

from aiohttp import web

from adsync.testing.contract import FakeTarget, Mode, sha256_hex


class FakeMyIam(FakeTarget):
    def __init__(self, token: str, users: tuple[str, ...] = ("jdoe",)) -> None:
        super().__init__()
        self.token = token
        self.users = set(users)

    def routes(self, app: web.Application) -> None:
        app.router.add_put("/api/v1/users/{account}/password", self._set_password)

    async def _set_password(self, request: web.Request) -> web.Response:
        await self.gate()  # first in every handler: stall(), slow()
        account = request.match_info["account"]
        body = await request.read()
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            self.record(request, body, account=account, valid=False, problem="bad token")
            return web.json_response({"code": "unauthorized"}, status=401)
        try:
            password = json.loads(body)["password"]
        except (ValueError, KeyError, TypeError):
            self.record(request, body, account=account, valid=False, problem="bad body")
            return web.json_response({"code": "bad_request"}, status=400)
        self.record(request, body, account=account, password_sha256=sha256_hex(password))
        if self.mode is Mode.UNKNOWN_USER or account not in self.users:
            return web.json_response({"code": "user_not_found"}, status=404)
        if self.mode is Mode.REJECT:
            answer = {"code": "password_policy", "message": self.reject_reason}
            return web.json_response(answer, status=422)
        return web.Response(status=204)
