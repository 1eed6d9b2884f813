"""``adsync samba setup``: the smb.conf lines and syncpasswords commands for a Samba AD DC."""

from __future__ import annotations

import shlex
import shutil
import sys
from pathlib import Path

import click

from adsync.cli.common import config_option

SYNC_ATTRIBUTES = (
    "objectGUID,objectSid,sAMAccountName,userPrincipalName,userAccountControl,"
    "pwdLastSet,msDS-KeyVersionNumber,virtualClearTextUTF8"
)


def _adsync_command() -> str:
    found = shutil.which("adsync")
    return shlex.quote(found) if found else f"{shlex.quote(sys.executable)} -m adsync"


@click.group()
def samba() -> None:
    """Connect a Samba AD DC to adsync."""


@samba.command("setup")
@click.option(
    "--smb-conf",
    "smb_conf",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    required=True,
    help="The DC's smb.conf.",
)
@config_option
@click.option(
    "--hook-script",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Where the syncpasswords hook wrapper goes (default: next to the config).",
)
@click.option(
    "--apply", is_flag=True, help="Edit smb.conf (a .bak copy is kept) and write the hook."
)
def setup(smb_conf: Path, config_path: Path, hook_script: Path | None, apply: bool) -> None:
    """Print (or apply) what a Samba AD DC needs to feed adsync."""
    from adsync.hooks.smbconf import global_value, set_global

    config_path = config_path.resolve()
    hook_script = (hook_script or config_path.parent / "samba-sync-hook").resolve()
    adsync = _adsync_command()
    check = f"{adsync} hook samba-check --config {shlex.quote(str(config_path))}"
    text = smb_conf.read_text(encoding="utf-8")
    fingerprint = global_value(text, "password hash gpg key ids")
    wrapper = (
        "#!/bin/sh\n# samba-tool user syncpasswords --script (it takes a path, no arguments)\n"
        f"exec {adsync} hook samba-sync --config {shlex.quote(str(config_path))}\n"
    )
    conf_arg = shlex.quote(str(smb_conf))
    echo = click.echo
    echo(f"# 1. smb.conf [global] ({smb_conf})")
    echo(f"\tcheck password script = {check}")
    if fingerprint:
        echo(f"\tpassword hash gpg key ids = {fingerprint}   # already set")
    else:
        echo("\tpassword hash gpg key ids = <FINGERPRINT>")
        echo("#    not set yet: syncpasswords gets no cleartext without it. Create a key for root:")
        echo(
            "#    gpg --batch --passphrase '' --quick-gen-key"
            " 'samba-dc <root@dc>' rsa3072 encr never"
        )
        echo("#    then put its fingerprint (gpg --list-keys --with-colons | grep ^fpr) above.")
    echo("#    Keep password complexity on: Samba runs the check script only then")
    echo(f"#    (samba-tool domain passwordsettings set --complexity=on -s {conf_arg}).")
    echo("#    Restart samba afterwards: it does not reread smb.conf.")
    echo(f"\n# 2. the syncpasswords hook: {hook_script} (mode 0755)")
    for line in wrapper.splitlines():
        echo(f"#    {line}")
    echo(
        "\n# 3. syncpasswords: initialise once, then keep it running (e.g. systemd Restart=always)"
    )
    echo(
        f"samba-tool user syncpasswords -s {conf_arg} --cache-ldb-initialize "
        f"--decrypt-samba-gpg --attributes={SYNC_ATTRIBUTES} "
        f"--script={shlex.quote(str(hook_script))}"
    )
    echo(f"samba-tool user syncpasswords -s {conf_arg}            # foreground (systemd)")
    echo(
        f"# or: samba-tool user syncpasswords -s {conf_arg} --daemon "
        "--logfile=/var/log/samba/syncpasswords.log"
    )
    echo("#  The first run after initialising hands over every current password; adsync skips")
    echo(
        "#  them (samba.initial_dump: skip) unless set to forward."
        " Start it right after initialising."
    )
    if not apply:
        echo("\n# nothing changed; --apply edits smb.conf and writes the hook")
        return
    backup = smb_conf.with_name(smb_conf.name + ".bak")
    backup.write_text(text, encoding="utf-8")
    smb_conf.write_text(set_global(text, {"check password script": check}), encoding="utf-8")
    hook_script.parent.mkdir(parents=True, exist_ok=True)
    hook_script.write_text(wrapper, encoding="utf-8")
    hook_script.chmod(0o755)
    echo(f"\n# applied: {smb_conf} (backup {backup}), {hook_script}")
