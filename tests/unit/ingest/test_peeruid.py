"""The owner of a loopback TCP peer, from the kernel (Linux sock_diag)."""

from __future__ import annotations

import os
import socket
import sys

import pytest

from adsync.ingest.peeruid import peer_uid

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sock_diag: Linux")


def test_the_owner_of_a_connected_peer_is_found() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        with socket.create_connection(server.getsockname()):
            accepted, address = server.accept()
            with accepted:
                assert peer_uid(socket.AF_INET, address, accepted.getsockname()) == os.getuid()


def test_a_peer_that_closed_its_socket_is_unknown_not_root() -> None:
    """The kernel reports uid 0 for an orphaned or time-wait socket: that is no owner."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        client = socket.create_connection(server.getsockname())
        accepted, address = server.accept()
        client.close()
        with accepted:
            assert accepted.recv(1) == b""
            assert peer_uid(socket.AF_INET, address, accepted.getsockname()) is None


def test_no_such_connection_is_unknown() -> None:
    assert peer_uid(socket.AF_INET, ("127.0.0.1", 1), ("127.0.0.1", 2)) is None
