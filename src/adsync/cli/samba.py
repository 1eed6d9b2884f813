"""``adsync samba setup|baseline``: connect a Samba AD DC to adsync (docs/samba.md)."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import click

from adsync.cli.common import config_option

SYNC_ATTRIBUTES = (
    "objectGUID,objectSid,sAMAccountName,userPrincipalName,userAccountControl,"
    "pwdLastSet,msDS-KeyVersionNumber,virtualClearTextUTF8"
)
GPG_KEY_STEP = (
    "gpg --batch --passphrase '' --quick-gen-key 'samba-dc <root@{host}>' rsa3072 encr never"
)


class SetupStop(click.ClickException):
    """A step setup cannot take itself; the message is the exact step to take."""

    exit_code = 1


@click.group()
def samba() -> None:
    """Connect a Samba AD DC to adsync."""


def _config_on_undecided(config_path: Path) -> str:
    from adsync.hooks.settings import HookConfigError, load_hook_settings

    try:
        return load_hook_settings(str(config_path)).on_undecided
    except HookConfigError:
        return "accept"


def _gpg_fingerprint(explicit: str | None) -> str | None:
    """``--gpg-key``, else the one secret encryption key in $GNUPGHOME (None: none or several)."""
    if explicit:
        return explicit
    from adsync.hooks.install import encryption_keys

    try:
        listing = subprocess.run(
            ["gpg", "--batch", "--with-colons", "--list-secret-keys"],
            capture_output=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    keys = encryption_keys(listing.stdout.decode(errors="replace"))
    return keys[0] if len(keys) == 1 else None


def _python3_gpg_missing() -> bool:
    """samba-tool (``/usr/bin/python3``) decrypts the stored cleartext with python3-gpg."""
    python = "/usr/bin/python3"
    if not os.path.exists(python):
        return False
    probe = subprocess.run([python, "-c", "import gpg"], capture_output=True, check=False)
    return probe.returncode != 0


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
    "--hook-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Where the two hook scripts go (default: the config's directory).",
)
@click.option(
    "--on-undecided",
    type=click.Choice(["accept", "reject"]),
    default=None,
    help="What the check hook answers when the config cannot be read "
    "(default: the config's precheck.on_undecided, else accept).",
)
@click.option(
    "--gpg-key",
    default=None,
    help="Fingerprint for 'password hash gpg key ids' (default: the one secret "
    "encryption key in $GNUPGHOME or ~/.gnupg).",
)
@click.option(
    "--apply", is_flag=True, help="Edit smb.conf (a .bak copy is kept) and write the hooks."
)
def setup(
    smb_conf: Path,
    config_path: Path,
    hook_dir: Path | None,
    on_undecided: str | None,
    gpg_key: str | None,
    apply: bool,
) -> None:
    """Print (or apply) what a Samba AD DC needs to feed adsync."""
    from adsync.hooks.install import CHECK_HOOK, SYNC_HOOK, check_line, hook_script
    from adsync.hooks.smbconf import global_value, set_global

    config_path = config_path.resolve()
    hooks = (hook_dir or config_path.parent).resolve()
    text = smb_conf.read_text(encoding="utf-8")
    workgroup = (global_value(text, "workgroup") or "").upper()
    if not workgroup:
        raise SetupStop(f"{smb_conf}: no 'workgroup' in [global]: is this a provisioned DC?")
    on_undecided = on_undecided or _config_on_undecided(config_path)
    check = check_line(str(hooks), str(config_path), on_undecided, workgroup)
    if "%" in check:  # Samba substitutes %-variables in this parameter (lp_sub)
        raise SetupStop(f"a '%' in {check!r} would be substituted by Samba: use other paths")
    sync_hook = hooks / SYNC_HOOK
    sync_args = ["--config", str(config_path), "--domain", workgroup]
    scripts = {
        hooks / CHECK_HOOK: hook_script("samba-check", []),
        sync_hook: hook_script("samba-sync", sync_args),
    }
    configured = global_value(text, "password hash gpg key ids")
    fingerprint = configured or _gpg_fingerprint(gpg_key)
    conf_arg = shlex.quote(str(smb_conf))
    echo = click.echo
    echo(f"# 1. smb.conf [global] ({smb_conf})")
    echo(f"\tcheck password script = {check}")
    if configured:
        echo(f"\tpassword hash gpg key ids = {configured}   # already set")
    elif fingerprint:
        echo(f"\tpassword hash gpg key ids = {fingerprint}")
    else:
        echo("\tpassword hash gpg key ids = <FINGERPRINT>")
        echo("#    No single secret encryption key in GNUPGHOME: create one (no passphrase):")
        echo(f"#    {GPG_KEY_STEP.format(host=os.uname().nodename)}")
        echo("#    or name one with --gpg-key FINGERPRINT.")
    echo("#    Keep password complexity on: Samba runs the check script only then")
    echo(f"#    (samba-tool domain passwordsettings set --complexity=on -s {conf_arg}).")
    echo("#    Restart samba afterwards: it does not reread smb.conf.")
    echo(f"\n# 2. the hook scripts (mode 0755): {', '.join(str(p) for p in scripts)}")
    echo("\n# 3. with samba running: the baseline, then initialise syncpasswords, then run it")
    echo(f"{_adsync_cli()} samba baseline --config {shlex.quote(str(config_path))}")
    echo(
        f"samba-tool user syncpasswords -s {conf_arg} --cache-ldb-initialize "
        f"--decrypt-samba-gpg --attributes={SYNC_ATTRIBUTES} "
        f"--script={shlex.quote(str(sync_hook))}"
    )
    echo(f"samba-tool user syncpasswords -s {conf_arg}            # foreground (systemd)")
    echo("#  samba, samba-tool and syncpasswords must share one GNUPGHOME (root's by default).")
    gpg_missing = _python3_gpg_missing()
    if gpg_missing:
        echo("#  python3-gpg is missing: apt-get install python3-gpg (syncpasswords needs it)")
    if not apply:
        echo("\n# nothing changed; --apply edits smb.conf and writes the hook scripts")
        return
    if not fingerprint:
        raise SetupStop(
            "no 'password hash gpg key ids' and no single secret encryption key in GNUPGHOME; "
            f"create one with: {GPG_KEY_STEP.format(host=os.uname().nodename)}  "
            "(or pass --gpg-key FINGERPRINT), then run setup again. Nothing was changed."
        )
    if gpg_missing:
        raise SetupStop("python3-gpg is missing: apt-get install python3-gpg. Nothing was changed.")
    backup = smb_conf.with_name(smb_conf.name + ".bak")
    backup.write_text(text, encoding="utf-8")
    values = {"check password script": check, "password hash gpg key ids": fingerprint}
    smb_conf.write_text(set_global(text, values), encoding="utf-8")
    hooks.mkdir(parents=True, exist_ok=True)
    for path, body in scripts.items():
        path.write_text(body, encoding="utf-8")
        path.chmod(0o755)
    echo(f"\n# applied: {smb_conf} (backup {backup}), {', '.join(str(p) for p in scripts)}")
    echo("# next: restart samba, then the three commands of step 3")


def _adsync_cli() -> str:
    import shutil

    found = shutil.which("adsync")
    return shlex.quote(found) if found else f"{shlex.quote(sys.executable)} -m adsync"


@samba.command("baseline")
@config_option
def baseline(config_path: Path) -> None:
    """Record "now" as the start of syncpasswords: run it right before --cache-ldb-initialize.

    The first syncpasswords run hands over every current password; those set
    before the baseline are that initial dump (skipped unless samba.initial_dump
    is forward), everything set after it is delivered.
    """
    import time

    from adsync.hooks.settings import HookConfigError, load_hook_settings
    from adsync.hooks.sync_state import load_state, set_baseline, state_path

    try:
        settings = load_hook_settings(str(config_path))
    except HookConfigError as exc:
        raise click.ClickException(str(exc)) from None
    before = load_state(settings.state_dir).baseline_ms
    now = set_baseline(settings.state_dir)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(now / 1000))
    echo = click.echo
    echo(f"baseline {stamp} written to {state_path(settings.state_dir)}")
    if before is not None:
        echo(f"(replaces the baseline of {time.ctime(before / 1000)})")
    echo("now initialise syncpasswords (--cache-ldb-initialize) and start it")
