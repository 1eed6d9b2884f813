"""``adsync test``: send one real password change, exactly as a filter would.

It is a real propagation, not a dry run: the targets really set the password. So the
password never comes from the command line (shell history, the process list), the
command says where it goes before it sends, and ``--backend`` narrows it to one target.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from adsync.cli.common import config_option, connect_daemon, load_or_exit

if TYPE_CHECKING:
    from adsync.config import Config
    from adsync.plugin import Change, Outcome
    from adsync.secret import Secret

REFUSED_ARGUMENT = (
    "a password on the command line is refused (it would stay in the shell history and "
    "the process list): leave it out to be prompted, or pipe it with --password-stdin"
)


def default_domain() -> str:
    """The domain a real change from this host carries: the DC's DNS domain on Windows
    (what adsyncflt.dll sends), none on Linux (the Samba hooks send none)."""
    if sys.platform == "win32":  # pragma: no cover - Windows only
        return os.environ.get("USERDNSDOMAIN", "").lower()
    return ""


def read_password(password_stdin: bool) -> str:
    if password_stdin:
        raw = sys.stdin.readline()
        return raw[:-1] if raw.endswith("\n") else raw
    return str(click.prompt("Password", hide_input=True, confirmation_prompt=True))


@click.command()
@config_option
@click.argument("account")
@click.argument("extra", nargs=-1, metavar="")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option(
    "--backend",
    "backend_name",
    default=None,
    help="Deliver to this backend only, directly through its plugin (the daemon and the "
    "queue are not involved), and print its outcome.",
)
@click.option(
    "--domain",
    default=None,
    help="The domain to report (default: what this host's real source sends: the DNS "
    "domain on Windows, none from Samba).",
)
@click.option("--timeout", default=10.0, show_default=True, help="Seconds to wait for the ACK.")
def test(
    config_path: Path,
    account: str,
    extra: tuple[str, ...],
    password_stdin: bool,
    backend_name: str | None,
    domain: str | None,
    timeout: float,
) -> None:
    """Send ACCOUNT a new password for real (prompted, or --password-stdin).

    Without --backend the change goes through the daemon to every configured backend,
    as a password change on the DC would.
    """
    if extra:
        click.echo(f"adsync test: {REFUSED_ARGUMENT}", err=True)  # never echo the argument
        raise SystemExit(2)
    config = load_or_exit(config_path)
    if backend_name is not None and backend_name not in config.backends:
        names = ", ".join(sorted(config.backends)) or "none"
        raise click.ClickException(f"no backend named {backend_name!r} (configured: {names})")
    targets = [backend_name] if backend_name else sorted(config.backends)
    click.echo(
        f"WARNING: this sets {account}'s password for real on: {', '.join(targets)}",
        err=True,
    )
    from adsync.secret import Secret

    secret = Secret(read_password(password_stdin))
    domain = default_domain() if domain is None else domain
    if backend_name is not None:
        _direct(config, backend_name, account, secret, domain)
    else:
        _through_daemon(config, account, secret, domain, timeout)


def _direct(config: Config, name: str, account: str, secret: Secret, domain: str) -> None:
    import asyncio

    from adsync.plugin import Change, OutcomeKind
    from adsync.secret import scrub

    change = Change(
        event_id=os.urandom(16),
        account=account,
        password=secret,
        changed_at_ms=int(time.time() * 1000),
        domain=domain,
        source_host=socket.gethostname(),
    )
    outcome = asyncio.run(_deliver_once(config, name, change))
    reason = scrub(outcome.reason, secret)
    click.echo(f"{name}: {outcome.kind.value}" + (f": {reason}" if reason else ""))
    raise SystemExit(0 if outcome.kind is OutcomeKind.DELIVERED else 1)


async def _deliver_once(config: Config, name: str, change: Change) -> Outcome:
    """Start that one plugin as the daemon does, deliver, close."""
    from adsync.plugin import Outcome
    from adsync.reloader import BackendStartError, start_backend

    try:
        backend = await start_backend(name, config.backends[name])
    except BackendStartError as exc:
        return Outcome.configuration(f"cannot start: {exc.reason}")
    try:
        return await backend.deliver(change)
    except Exception as exc:  # a plugin's bug: its type only, a message could hold anything
        return Outcome.failed(f"the plugin raised {type(exc).__name__}")
    finally:
        await backend.close()


def _through_daemon(
    config: Config, account: str, secret: Secret, domain: str, timeout: float
) -> None:
    from adsync.ingest.client import IngestError

    event_id = os.urandom(16)
    try:
        client = connect_daemon(config, timeout)
        with client:
            ack = client.change(
                account=account,
                password=secret,
                domain=domain,
                changed_at_ms=int(time.time() * 1000),
                event_id=event_id,
                source_host=socket.gethostname(),
            )
    except (OSError, IngestError) as exc:
        raise click.ClickException(f"cannot reach the daemon: {exc}") from None
    if ack.status == 0:
        click.echo(f"stored: event {event_id.hex()} for {account} is queued for delivery")
        return
    label = {1: "refused", 2: "busy"}.get(int(ack.status), "unknown status")
    click.echo(f"{label}: {ack.reason}", err=True)
    raise SystemExit(1 if ack.status == 1 else 3)
