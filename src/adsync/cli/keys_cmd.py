"""``adsync keys rotate|reseal|check``: rotate the queue's keys and verify every sealed row.

Nothing here prints key material or a password: only key ids, row counts and
event ids.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from adsync.cli.common import config_option, echo_json, load_or_exit, plural

if TYPE_CHECKING:
    from adsync.config import Config
    from adsync.queue.keys import KeyProvider
    from adsync.queue.store import Queue


def daemon_running(db_path: Path) -> bool:
    """True when a daemon holds ``<db>.lock`` (probed without blocking, released at once)."""
    if sys.platform == "win32":  # pragma: no cover - no lock file there: the service does the work
        return True
    import fcntl

    lock = Path(str(db_path) + ".lock")
    if not lock.exists():
        return False
    with open(lock, "ab") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
    return False


def _fail(message: str, code: int = 2) -> None:
    click.echo(f"adsync keys: {message}", err=True)
    raise SystemExit(code)


async def _open(config: Config, provider: KeyProvider, *, operator: bool) -> Queue:
    from adsync.queue.store import Queue

    path = Path(config.queue.path)
    if not path.exists():  # noqa: ASYNC240 - one stat before the queue opens
        _fail(f"no queue database at {path}")
    return await Queue.open(
        path, provider, [], max_pending=config.queue.max_pending, operator=operator
    )


def _run(coro: Any, config: Config, provider: KeyProvider) -> Any:
    """Run ``coro``; a queue that does not open is one line and exit 2 (documented)."""
    import sqlite3

    from adsync.queue.errors import QueueError, QueueKeyError
    from adsync.queue.keys import interrupted_master_rotation
    from adsync.startup import interrupted_rotation_line

    try:
        return asyncio.run(coro)
    except QueueKeyError as exc:
        staged = interrupted_master_rotation(provider, Path(config.queue.path))
        _fail(interrupted_rotation_line(staged) if staged is not None else str(exc))
    except QueueError as exc:
        _fail(f"cannot open the queue {config.queue.path}: {exc}")
    except sqlite3.DatabaseError as exc:
        _fail(f"the queue {config.queue.path} cannot be read: {exc}")


@click.group()
def keys() -> None:
    """Rotate and check the queue's encryption keys."""


@keys.command()
@config_option
@click.option(
    "--master",
    is_flag=True,
    help="Replace the master key (rewrap the data keys) instead of adding a data key.",
)
@click.option(
    "--wait/--no-wait",
    default=True,
    show_default=True,
    help="With a running daemon: wait until it has re-sealed every row and retired the old key.",
)
@click.option("--timeout", type=float, default=600.0, show_default=True, help="Seconds for --wait.")
@click.option(
    "--batch", type=click.IntRange(1, 100_000), default=200, show_default=True, hidden=True
)
def rotate(config_path: Path, master: bool, wait: bool, timeout: float, batch: int) -> None:
    """Make a new data key and re-seal every row under it, beside a running daemon or not.

    With a running daemon, the new key is added to the queue and the daemon
    switches to it within a second, re-seals the rows in the background and
    retires the old key once no row uses it. Without one, this command does
    the re-sealing itself (safe to interrupt: run `adsync keys reseal`).
    """
    from adsync.queue.keys import key_provider_from_config

    config = load_or_exit(config_path)
    provider = key_provider_from_config(config.keys)
    if master:
        _run(_rotate_master(config, provider), config, provider)
        return
    if daemon_running(Path(config.queue.path)):
        _run(_rotate_beside_daemon(config, provider, wait, timeout), config, provider)
    else:
        _run(_rotate_alone(config, provider, batch, add_key=True), config, provider)


@keys.command()
@config_option
@click.option(
    "--batch", type=click.IntRange(1, 100_000), default=200, show_default=True, hidden=True
)
def reseal(config_path: Path, batch: int) -> None:
    """Finish an interrupted rotation without a daemon (the daemon does this by itself)."""
    from adsync.queue.keys import key_provider_from_config

    config = load_or_exit(config_path)
    if daemon_running(Path(config.queue.path)):
        _fail("the daemon is running and re-seals by itself; nothing to do here", 1)
    provider = key_provider_from_config(config.keys)
    _run(_rotate_alone(config, provider, batch, add_key=False), config, provider)


async def _add_key(queue: Queue, provider: KeyProvider) -> int:
    from adsync.queue.errors import KeyProviderError, QueueKeyError, SealError
    from adsync.queue.rotation import add_data_key, verify_master

    try:
        master = provider.master_key()
    except KeyProviderError as exc:
        raise QueueKeyError(str(exc)) from None
    now = time.time()

    def op(conn: Any) -> int:
        verify_master(conn, master)
        return add_data_key(conn, master, now)

    try:
        return await queue.write(op)
    except SealError:
        raise QueueKeyError(
            f"the master key from {provider.describe()} does not open this queue's keys"
        ) from None


async def _rotate_alone(config: Config, provider: KeyProvider, batch: int, add_key: bool) -> None:
    queue = await _open(config, provider, operator=False)  # takes the daemon's lock
    try:
        maintainer = queue.key_maintainer
        assert maintainer is not None
        await maintainer.stop()  # this command drives it step by step, to report the result
        maintainer.batch = batch
        if add_key:
            key_id = await _add_key(queue, provider)
            click.echo(f"data key {key_id} added and active")
        result = await maintainer.run_until_settled()
        click.echo(
            f"re-sealed {plural(result.resealed, 'row')} under key {queue.sealer.active_key_id}"
        )
        for kid in result.retired:
            click.echo(f"retired data key {kid} (no row uses it)")
        if result.unreadable:
            click.echo(
                f"{plural(len(result.unreadable), 'row')} cannot be opened, left on the old key "
                "(see: adsync keys check)",
                err=True,
            )
            raise SystemExit(1)
    finally:
        await queue.close()


async def _rotate_beside_daemon(
    config: Config, provider: KeyProvider, wait: bool, wait_seconds: float
) -> None:
    from adsync.queue.rotation import fingerprint, inactive_data_keys, rows_per_key

    queue = await _open(config, provider, operator=True)
    try:
        key_id = await _add_key(queue, provider)
        click.echo(
            f"data key {key_id} added and active; the running daemon switches to it, "
            "re-seals the queue in the background and retires the old key"
        )
        if not wait:
            return
        deadline = time.monotonic() + wait_seconds
        while True:
            counts = await queue.read(rows_per_key)
            fp = await queue.read(fingerprint)
            old_rows = sum(n for kid, n in counts.items() if kid != key_id)
            if old_rows == 0 and not inactive_data_keys(fp):
                click.echo(
                    f"done: {plural(counts.get(key_id, 0), 'row')} on key {key_id}, old key retired"
                )
                return
            if time.monotonic() > deadline:
                _fail(
                    f"timed out: {plural(old_rows, 'row')} still on older keys "
                    "(is the daemon running? see its log for key_maintenance_failed)",
                    1,
                )
            await asyncio.sleep(0.5)
    finally:
        await queue.close()


async def _rotate_master(config: Config, provider: KeyProvider) -> None:
    from adsync.queue.errors import KeyProviderError, QueueKeyError
    from adsync.queue.keys import (
        MASTER_KEY_BYTES,
        DpapiKeyProvider,
        FileKeyProvider,
        master_opens,
    )
    from adsync.queue.rotation import rewrap_keys

    if not isinstance(provider, FileKeyProvider | DpapiKeyProvider):
        _fail(
            f"the master key in {provider.describe()} cannot be replaced by adsync; "
            "see docs/operations.md (key rotation)"
        )
        return
    path = Path(config.queue.path)
    try:
        staged = provider.staged_key()
    except KeyProviderError as exc:
        raise QueueKeyError(str(exc)) from None
    if staged is not None:  # an earlier run stopped between its steps
        if master_opens(path, staged):
            provider.commit_staged()
            click.echo(f"finished an interrupted master key rotation: {provider.path}")
            return
        provider.discard_staged()  # its rewrap never committed: start over
    queue = await _open(config, provider, operator=True)
    try:
        try:
            old = provider.master_key()
        except KeyProviderError as exc:
            raise QueueKeyError(str(exc)) from None
        import os

        new = os.urandom(MASTER_KEY_BYTES)
        provider.stage(new)
        try:
            n = await queue.write(lambda c: rewrap_keys(c, old, new))
        except BaseException:
            provider.discard_staged()
            raise
        provider.commit_staged()
        click.echo(
            f"rewrapped {plural(n, 'key')} under a new master key in {provider.path}; "
            f"the previous one is kept as {provider.previous_path} for older backups"
        )
    finally:
        await queue.close()


@keys.command()
@config_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def check(config_path: Path, as_json: bool) -> None:
    """Open every sealed value of every queued change; exit 1 listing the rows that do not open."""
    from adsync.queue.keys import key_provider_from_config
    from adsync.queue.rotation import CheckReport, check_rows

    config = load_or_exit(config_path)
    provider = key_provider_from_config(config.keys)

    async def go() -> CheckReport:
        queue = await _open(config, provider, operator=True)
        try:
            sealer = queue.sealer
            return await queue.read(lambda c: check_rows(c, sealer))
        finally:
            await queue.close()

    report: CheckReport = _run(go(), config, provider)
    if as_json:
        echo_json(
            {
                "passed": report.passed,
                "rows": report.rows,
                "keys": [
                    {
                        "key_id": k.key_id,
                        "purpose": k.purpose,
                        "active": k.active,
                        "rows_ok": report.ok.get(k.key_id, 0),
                        "rows_bad": report.bad.get(k.key_id, 0),
                    }
                    for k in report.keys
                ],
                "unknown_key_rows": {
                    str(kid): n
                    for kid, n in report.bad.items()
                    if kid not in {k.key_id for k in report.keys}
                },
                "bad_event_ids": report.bad_event_ids,
            }
        )
    else:
        known = {k.key_id for k in report.keys}
        for k in report.keys:
            if k.purpose != "data":
                continue
            state = "active" if k.active else "retiring"
            click.echo(
                f"key {k.key_id} ({state}): {plural(report.ok.get(k.key_id, 0), 'row')} open, "
                f"{report.bad.get(k.key_id, 0)} do not"
            )
        for kid, n in report.bad.items():
            if kid not in known:
                click.echo(
                    f"key {kid} (missing from the key table): {plural(n, 'row')} cannot be opened"
                )
        if report.passed:
            click.echo(f"ok: {plural(report.rows, 'row')} checked, every one opens")
        else:
            click.echo(f"{plural(len(report.bad_event_ids), 'row')} cannot be opened:", err=True)
            for eid in report.bad_event_ids:
                click.echo(f"  {eid}", err=True)
    if not report.passed:
        raise SystemExit(1)
