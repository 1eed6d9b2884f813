"""The ``adsync`` command. Subcommands load lazily: Samba spawns a hook process per
event, so ``adsync hook …`` must not import the daemon, aiohttp or pydantic."""

from __future__ import annotations

import importlib
from typing import Any

import click

# name -> "module:attribute" of a click command or group; imported only when used.
SUBCOMMANDS: dict[str, str] = {
    "run": "adsync.cli.run:run",
    "check-config": "adsync.cli.config_cmd:check_config",
    "config": "adsync.cli.config_cmd:config",
    "test": "adsync.cli.test_cmd:test",
    "queue": "adsync.cli.queue_cmd:queue",
    "hook": "adsync.cli.hook:hook",
    "samba": "adsync.cli.samba:samba",
    "status": "adsync.cli.status:status",
    "reload": "adsync.cli.reload:reload",
    "demo": "adsync.cli.demo:demo",
    "doctor": "adsync.cli.doctor:doctor",
    "keys": "adsync.cli.keys_cmd:keys",
    "service": "adsync.cli.service_cmd:service",
    "filter": "adsync.cli.filter_cmd:filter_group",
    "audit": "adsync.cli.audit_cmd:audit",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(SUBCOMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = SUBCOMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, _, attr = target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                return None  # not built yet
            raise
        command: Any = getattr(module, attr)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=LazyGroup)
@click.version_option(package_name="adsync")
def main() -> None:
    """adsync: password synchronization from Active Directory domain controllers."""
