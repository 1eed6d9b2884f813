# file: tests/test_contract.py
"""adsync's plugin contract, run against the fake (pytest-asyncio in its default mode)."""

from __future__ import annotations

import os
from typing import Any

from adsync_myiam import MyIamBackend, MyIamConfig
from fake_myiam import FakeMyIam

from adsync.plugin import Backend, load_backend_class
from adsync.testing.contract import BackendContract, FakeTarget

TOKEN = "test-token-1"  # noqa: S105 (a test value)
ENV_NAME = "MYIAM_TEST_TOKEN"  # the config says token: env:MYIAM_TEST_TOKEN


class TestMyIamContract(BackendContract):
    def make_fake(self) -> FakeTarget:
        return FakeMyIam(token=TOKEN)

    def make_backend(self, fake: FakeTarget) -> Backend[Any]:
        os.environ[ENV_NAME] = TOKEN  # read by start(), as the daemon would
        config = MyIamConfig(type="myiam", url=fake.url, token=f"env:{ENV_NAME}")
        return MyIamBackend("myiam", config)


def test_the_entry_point_names_the_backend() -> None:
    assert load_backend_class("myiam") is MyIamBackend
