"""The contract kit catches what it claims to: a plugin that turns TLS verification off,
and one that leaves a task running after close(). Its tests are run here by hand on
deliberately broken plugins (built on the example plugin's shape: the SCIM fake)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from adsync.backends.scim import ScimBackend, ScimConfig
from adsync.plugin import Backend, TLSConfig
from adsync.testing.contract import BackendContract, FakeTarget
from adsync.testing.scim import FakeScim

TOKEN = "kit-token"


@pytest.fixture(autouse=True)
def token_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADSYNC_TEST_KIT_TOKEN", TOKEN)


def scim(fake: FakeTarget, **extra: Any) -> ScimBackend:
    assert isinstance(fake, FakeScim)
    config = ScimConfig(type="scim", url=fake.base_url, token="env:ADSYNC_TEST_KIT_TOKEN", **extra)
    return ScimBackend("scim", config)


class TrustsAnything(BackendContract):
    """A plugin that ignores its tls section and accepts any certificate."""

    def make_fake(self) -> FakeTarget:
        return FakeScim(token=TOKEN)

    def make_backend(self, fake: FakeTarget) -> Backend[Any]:
        return scim(fake, tls=TLSConfig(verify=False))


class LeakingScim(ScimBackend):
    """Starts a background task (a 'token refresher') that close() forgets."""

    async def start(self) -> None:
        await super().start()
        self._refresher = asyncio.get_running_loop().create_task(
            asyncio.sleep(3600), name="token-refresher"
        )


class LeaksATask(BackendContract):
    def make_fake(self) -> FakeTarget:
        return FakeScim(token=TOKEN)

    def make_backend(self, fake: FakeTarget) -> Backend[Any]:
        return LeakingScim("scim", scim(fake).config)


async def test_tls_check_refuses_a_plugin_that_does_not_verify() -> None:
    with pytest.raises(AssertionError, match=r"unverified TLS|misconfigured|DELIVERED"):
        await TrustsAnything().test_contract_tls_verification_stays_on()


async def test_the_reference_scim_backend_passes_the_tls_check() -> None:
    class Scim(TrustsAnything):
        def make_backend(self, fake: FakeTarget) -> Backend[Any]:
            return scim(fake)

    await Scim().test_contract_tls_verification_stays_on()


async def test_a_task_left_after_close_fails_whatever_its_name() -> None:
    kit = LeaksATask()
    with pytest.raises(AssertionError, match="token-refresher"):
        await kit.test_contract_close_releases_connections()
    with pytest.raises(AssertionError, match="token-refresher"):
        await kit.test_contract_delivered()
    for task in asyncio.all_tasks():
        if task.get_name() == "token-refresher":
            task.cancel()


async def test_every_contract_test_carries_its_asyncio_mark() -> None:
    names = [n for n in dir(BackendContract) if n.startswith("test_contract_")]
    assert len(names) == 8
    for name in names:
        marks = getattr(getattr(BackendContract, name), "pytestmark", [])
        assert [m.name for m in marks] == ["asyncio"], name
