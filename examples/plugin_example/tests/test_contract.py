# file: tests/test_contract.py
"""adsync's plugin contract, run against the fake (pytest-asyncio in its default mode)."""

from __future__ import annotations

import os
from typing import Any

from adsync.plugin import Backend, load_backend_class
from adsync.testing.contract import BackendContract, FakeTarget
from adsync_myiam import MyIamBackend, MyIamConfig
from fake_myiam import FakeMyIam

TOKEN = "test-token-1"  # noqa: S105 (a test value)


class TestMyIamContract(BackendContract):
    def make_fake(self) -> FakeTarget:
        return FakeMyIam(token=TOKEN)

    def make_backend(self, fake: FakeTarget) -> Backend[Any]:
        os.environ["MYIAM_TEST_TOKEN"] = TOKEN  # what token: "env:MYIAM_TEST_TOKEN" reads
        config = MyIamConfig(type="myiam", url=fake.url, token="env:MYIAM_TEST_TOKEN")
        return MyIamBackend("myiam", config)


def test_the_entry_point_names_the_backend() -> None:
    assert load_backend_class("myiam") is MyIamBackend
