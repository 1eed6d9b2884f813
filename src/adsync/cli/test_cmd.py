"""``adsync test``: send one CHANGE through the socket exactly as a filter would.

It is a real propagation, not a dry run: every configured backend receives it.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path

import click

from adsync.cli.common import config_option, load_or_exit


@click.command()
@config_option
@click.argument("account")
@click.argument("password", required=False)
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.option("--domain", default="", help="The NetBIOS domain name to report.")
@click.option("--timeout", default=10.0, show_default=True, help="Seconds to wait for the ACK.")
def test(
    config_path: Path,
    account: str,
    password: str | None,
    password_stdin: bool,
    domain: str,
    timeout: float,
) -> None:
    """Queue ACCOUNT's new PASSWORD for delivery (prompted for when not given)."""
    from adsync.ingest.client import IngestClient, IngestError
    from adsync.secret import Secret

    config = load_or_exit(config_path)
    if password is None:
        if password_stdin:
            raw = sys.stdin.readline()
            password = raw[:-1] if raw.endswith("\n") else raw
        else:
            password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    secret = Secret(password)
    del password
    event_id = os.urandom(16)
    ingest = config.ingest
    try:
        if ingest.unix_socket is not None:
            client = IngestClient.unix(ingest.unix_socket, timeout=timeout)
        elif ingest.tcp_address is not None:
            from adsync.ingest.psk import load_or_create_psk

            host, port = ingest.tcp_address
            client = IngestClient.tcp(
                host, port, load_or_create_psk(ingest.psk_file), timeout=timeout
            )
        else:
            raise click.ClickException(
                "the config enables neither ingest.unix_socket nor ingest.tcp"
            )
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
