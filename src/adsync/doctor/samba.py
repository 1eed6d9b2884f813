"""The Samba AD DC hooks are wired (Linux): the check password script in smb.conf, the GPG
key syncpasswords needs for cleartext, and syncpasswords running with adsync's hook."""

from __future__ import annotations

from pathlib import Path

from adsync.doctor.model import Context, Result

SETUP = "adsync samba setup --smb-conf {conf} --apply (then restart samba)"


def samba(ctx: Context) -> list[Result]:
    from adsync.hooks.smbconf import global_value

    if ctx.windows:
        return []
    conf = ctx.smb_conf
    try:
        text = conf.read_text(encoding="utf-8")
    except FileNotFoundError:
        return [Result.skip("samba hooks", f"no {conf}: not a Samba DC")]
    except OSError as exc:
        return [Result.fail("samba hooks", f"cannot read {conf}: {exc.strerror}", "run as root")]
    role = (global_value(text, "server role") or "").lower()
    if "domain controller" not in role:
        return [Result.skip("samba hooks", f"{conf}: server role is not an AD DC")]
    fix = SETUP.format(conf=conf)
    results = []
    check = global_value(text, "check password script") or ""
    if "hook samba-check" in check:
        results.append(Result.ok("samba check password script", "runs adsync hook samba-check"))
    else:
        results.append(
            Result.fail(
                "samba check password script",
                "smb.conf does not run adsync hook samba-check"
                + (f" (it runs: {check.split()[0]})" if check else ""),
                fix,
            )
        )
    if global_value(text, "password hash gpg key ids"):
        results.append(Result.ok("samba gpg key ids", "password hash gpg key ids is set"))
    else:
        results.append(
            Result.fail(
                "samba gpg key ids",
                "password hash gpg key ids is not set: syncpasswords gets no cleartext",
                fix,
            )
        )
    results.append(_syncpasswords(ctx))
    return results


def _syncpasswords(ctx: Context) -> Result:
    name = "samba syncpasswords"
    for cmdline in _cmdlines(ctx.proc):
        if "syncpasswords" not in cmdline or "samba-tool" not in " ".join(cmdline[:3]):
            continue
        script = next((a.partition("=")[2] for a in cmdline if a.startswith("--script=")), "")
        if not script:
            return Result.ok(name, "running (its --script was given at initialisation)")
        try:
            text = Path(script).read_text(encoding="utf-8")
        except OSError as exc:
            return Result.fail(
                name, f"its script {script} cannot be read: {exc.strerror}", "re-run setup"
            )
        if "hook samba-sync" not in text:
            return Result.fail(
                name, f"its script {script} does not run adsync hook samba-sync", "re-run setup"
            )
        return Result.ok(name, f"running with {script}")
    return Result.fail(
        name,
        "samba-tool user syncpasswords is not running: "
        "password changes on this DC are not captured",
        "start it (adsync samba setup prints the command; run it under systemd, Restart=always)",
    )


def _cmdlines(proc: Path) -> list[list[str]]:
    found = []
    try:
        entries = list(proc.iterdir())
    except OSError:
        return []
    for entry in entries:
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        args = [a.decode("utf-8", "replace") for a in raw.split(b"\0") if a]
        if args:
            found.append(args)
    return found
