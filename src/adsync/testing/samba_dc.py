"""A real Samba AD DC for tests, in a network namespace of its own (only ``lo``).

Provisioning takes ~4 s, so it happens once per test session into a template
(``SambaTemplate``); each DC (``SambaDC``) is a ``cp -a`` of it with its own
smb.conf, krb5.conf and network namespace. Samba runs in a private mount
namespace with ``DIR/run`` bind-mounted on ``/run/samba`` (where smbd's winbind
client looks). Stopped by pid; the namespace is deleted and the gpg-agent of
its ``GNUPGHOME`` stopped at teardown.

Cleartext passwords for ``samba-tool user syncpasswords`` come from the
``password hash gpg key ids`` feature: a throwaway gpg key made here.

If anything cannot start, a ``SambaError`` carries the command's stderr or the
log tail: tests that need the DC fail with the reason; nothing is skipped.
"""

from __future__ import annotations

import itertools
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adsync.testing.fixtures import FixtureTable, fixture_attribute

REALM = "ADSYNC.TEST"
DOMAIN = "ADSYNC"
HOST = "dc1"
ADMIN_PASSWORD = "Adm1n-Pass-word!"  # noqa: S105 (a throwaway test domain)
SYNC_ATTRIBUTES = (
    "objectGUID,objectSid,sAMAccountName,userPrincipalName,userAccountControl,"
    "pwdLastSet,msDS-KeyVersionNumber,virtualClearTextUTF8"
)
_counter = itertools.count(1)


class SambaError(RuntimeError):
    """The DC could not be provisioned, started or driven; the message says why."""


def run_command(
    argv: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    input: bytes | None = None,
    timeout: float = 120.0,
    check: bool = True,
) -> subprocess.CompletedProcess[bytes]:
    try:
        result = subprocess.run(
            list(argv), env=env, input=input, capture_output=True, timeout=timeout, check=False
        )
    except FileNotFoundError as exc:
        raise SambaError(f"{argv[0]} is not installed: {exc}") from None
    except subprocess.TimeoutExpired as exc:
        raise SambaError(f"{shlex.join(argv[:4])} … timed out after {timeout}s") from exc
    if check and result.returncode != 0:
        tail = (result.stderr or result.stdout).decode(errors="replace")[-3000:]
        raise SambaError(f"{shlex.join(argv[:6])} … exited {result.returncode}:\n{tail}")
    return result


def short_tempdir(prefix: str) -> Path:
    """Unix socket paths (gpg-agent, ldapi) must stay short: use /tmp directly."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))


@dataclass
class SambaTemplate:
    """A provisioned domain (never started) plus its gpg home."""

    root: Path
    fingerprint: str

    @property
    def target(self) -> Path:
        return self.root / "dc"

    @property
    def gnupghome(self) -> Path:
        return self.root / "gnupg"

    @classmethod
    def provision(cls, root: Path | None = None) -> SambaTemplate:
        root = root or short_tempdir("adsync-dct-")
        gnupghome = root / "gnupg"
        gnupghome.mkdir(mode=0o700, parents=True)
        env = {**os.environ, "GNUPGHOME": str(gnupghome)}
        run_command(
            [
                "gpg", "--batch", "--passphrase", "", "--quick-gen-key",
                "adsync test <dc@adsync.test>", "rsa2048", "encr", "never",
            ],
            env=env,
        )  # fmt: skip
        listing = run_command(["gpg", "--batch", "--list-keys", "--with-colons"], env=env)
        fingerprint = next(
            line.split(":")[9]
            for line in listing.stdout.decode().splitlines()
            if line.startswith("fpr:")
        )
        stop_gpg_agent(gnupghome)
        template = cls(root, fingerprint)
        run_command(
            [
                "unshare", "--net", "samba-tool", "domain", "provision",
                f"--realm={REALM}", f"--domain={DOMAIN}", "--server-role=dc",
                "--dns-backend=NONE", "--use-rfc2307", f"--host-name={HOST}",
                "--host-ip=127.0.0.1", f"--adminpass={ADMIN_PASSWORD}",
                f"--targetdir={template.target}",
                "--option=interfaces = lo", "--option=bind interfaces only = yes",
                "--option=disable netbios = yes",
                f"--option=password hash gpg key ids = {fingerprint}",
            ],
            env=env,
        )  # fmt: skip
        write_smb_conf(template.target, fingerprint)
        run_command(
            [
                "samba-tool", "domain", "passwordsettings", "set",
                "--min-pwd-age=0", "--history-length=0",
                "-s", str(template.target / "etc" / "smb.conf"),
            ],
            env=env,
        )  # fmt: skip
        return template

    def remove(self) -> None:
        stop_gpg_agent(self.gnupghome)
        shutil.rmtree(self.root, ignore_errors=True)


def write_smb_conf(target: Path, fingerprint: str | None, check_script: str | None = None) -> Path:
    """The whole smb.conf for a DC in ``target``: loopback only, no printing, paths inside.

    ``fingerprint`` None leaves ``password hash gpg key ids`` out, as on a freshly
    provisioned DC (``adsync samba setup --apply`` writes it).
    """
    t = target
    lines = [
        "[global]",
        "\tnetbios name = DC1",
        f"\trealm = {REALM}",
        f"\tworkgroup = {DOMAIN}",
        "\tserver role = active directory domain controller",
        "\tserver services = s3fs, rpc, ldap, cldap, kdc, drepl, winbindd, kcc",
        "\tinterfaces = lo",
        "\tbind interfaces only = Yes",
        "\tdisable netbios = Yes",
        "\tdns update command = /bin/true",
        "\tunix password sync = No",
        f"\tbinddns dir = {t}/bind-dns",
        f"\tcache directory = {t}/cache",
        f"\tlock directory = {t}",
        f"\tprivate dir = {t}/private",
        f"\tstate directory = {t}/state",
        f"\tpid directory = {t}/run",
        f"\tncalrpc dir = {t}/run/ncalrpc",
        f"\tntp signd socket directory = {t}/run/ntp_signd",
        f"\tusershare path = {t}/usershares",
        f"\tlog file = {t}/log/log.%m",
        "\tlogging = file",
        "\tmax log size = 10000",
        "\tload printers = No",
        "\tprinting = bsd",
        "\tprintcap name = /dev/null",
        "\tdisable spoolss = Yes",
        "\tidmap_ldb:use rfc2307 = yes",
    ]
    if fingerprint is not None:
        lines.append(f"\tpassword hash gpg key ids = {fingerprint}")
    if check_script is not None:
        lines.append(f"\tcheck password script = {check_script}")
    lines += [
        "",
        "[sysvol]",
        f"\tpath = {t}/state/sysvol",
        "\tread only = No",
        "",
        "[netlogon]",
        f"\tpath = {t}/state/sysvol/{REALM.lower()}/scripts",
        "\tread only = No",
        "",
    ]
    for sub in ("run", "log", "usershares", "cache"):
        (t / sub).mkdir(parents=True, exist_ok=True)
    conf = t / "etc" / "smb.conf"
    conf.write_text("\n".join(lines))
    return conf


def stop_gpg_agent(gnupghome: Path) -> None:
    """Stop the agent of this GNUPGHOME by its pid (never by name)."""
    if not gnupghome.exists():
        return
    env = {**os.environ, "GNUPGHOME": str(gnupghome)}
    try:
        result = subprocess.run(
            ["gpg-connect-agent", "--no-autostart", "getinfo pid", "/bye"],
            env=env,
            capture_output=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return
    for line in result.stdout.decode(errors="replace").splitlines():
        if line.startswith("D "):
            try:
                os.kill(int(line[2:].strip()), signal.SIGTERM)
            except (ValueError, ProcessLookupError):
                pass


@dataclass
class SambaDC:
    """One running DC made from a template; ``start``/``stop`` may be repeated."""

    template: SambaTemplate
    check_script: str | None = None
    gpg_key_ids: bool = True  # False: smb.conf without it, as after ``provision``
    root: Path = field(default_factory=lambda: short_tempdir("adsync-dc-"))
    netns: str = field(default_factory=lambda: f"adsync-dc-{os.getpid()}-{next(_counter)}")
    proc: subprocess.Popen[bytes] | None = None
    sync_proc: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        run_command(["cp", "-a", str(self.template.target), str(self.target)])
        run_command(["cp", "-a", str(self.template.gnupghome), str(self.gnupghome)])
        fingerprint = self.template.fingerprint if self.gpg_key_ids else None
        self.conf = write_smb_conf(self.target, fingerprint, self.check_script)
        self.krb5_conf = self.root / "krb5.conf"
        self.krb5_conf.write_text(
            "[libdefaults]\n"
            f"\tdefault_realm = {REALM}\n\tdns_lookup_kdc = false\n\tdns_lookup_realm = false\n"
            "\tudp_preference_limit = 1\n"
            f"[realms]\n\t{REALM} = {{\n\t\tkdc = 127.0.0.1\n"
            "\t\tadmin_server = 127.0.0.1\n\t\tkpasswd_server = 127.0.0.1\n\t}\n"
        )
        self.log_path = self.root / "samba.out"
        self.sync_log = self.root / "syncpasswords.out"
        self._netns_created = False

    @property
    def target(self) -> Path:
        return self.root / "dc"

    @property
    def gnupghome(self) -> Path:
        return self.root / "gnupg"

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "GNUPGHOME": str(self.gnupghome),
            "KRB5_CONFIG": str(self.krb5_conf),
            "LDAPTLS_REQCERT": "never",
            "LDAPCONF": "/dev/null",
        }

    def in_netns(self, argv: Sequence[str]) -> list[str]:
        return ["ip", "netns", "exec", self.netns, *argv]

    # -- life cycle -------------------------------------------------------------------------

    def adopt_netns(self) -> None:
        """The namespace was made by someone else (a two-DC rig): delete it on stop all the same."""
        self._netns_created = True

    def start(self, wait: float = 60.0) -> None:
        if not self._netns_created:
            run_command(["ip", "netns", "add", self.netns])
            self._netns_created = True
            run_command(["ip", "-n", self.netns, "link", "set", "lo", "up"])
        Path("/run/samba").mkdir(parents=True, exist_ok=True)
        run_dir = self.target / "run"
        script = (
            f"mount --bind {shlex.quote(str(run_dir))} /run/samba && "
            f"exec samba -F -s {shlex.quote(str(self.conf))} -M single"
        )
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.in_netns(["unshare", "--mount", "--propagation", "private", "sh", "-c", script]),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env(),
        )
        log.close()
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SambaError(f"samba exited with {self.proc.returncode}:\n{self.log_tail()}")
            probe = subprocess.run(
                self.in_netns(
                    ["ldapsearch", "-x", "-H", "ldap://127.0.0.1", "-b", "", "-s", "base"]
                ),
                capture_output=True,
                env=self.env(),
                timeout=20,
                check=False,
            )
            if probe.returncode == 0:
                return
            time.sleep(0.2)
        self.stop()
        raise SambaError(f"samba's LDAP did not answer within {wait}s:\n{self.log_tail()}")

    def stop(self) -> None:
        self.stop_syncpasswords()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def destroy(self) -> None:
        self.stop()
        stop_gpg_agent(self.gnupghome)
        if self._netns_created:
            run_command(["ip", "netns", "del", self.netns], check=False)
            self._netns_created = False
        shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self, lines: int = 40) -> str:
        parts = []
        for path in (self.log_path, self.target / "log" / "log.samba"):
            try:
                text = path.read_text(errors="replace")
            except OSError:
                continue
            parts.append(f"--- {path.name}\n" + "\n".join(text.splitlines()[-lines:]))
        return "\n".join(parts) or "(no log)"

    # -- driving it -------------------------------------------------------------------------

    def samba_tool(
        self, *args: str, check: bool = True, input: bytes | None = None
    ) -> subprocess.CompletedProcess[bytes]:
        return run_command(
            self.in_netns(["samba-tool", *args, "-s", str(self.conf)]),
            env=self.env(),
            check=check,
            input=input,
        )

    def admin_args(self) -> list[str]:
        return ["-H", "ldap://127.0.0.1", "-U", f"Administrator%{ADMIN_PASSWORD}"]

    def create_user(self, name: str, password: str) -> None:
        self.samba_tool("user", "create", name, password)

    def set_password(self, name: str, password: str) -> subprocess.CompletedProcess[bytes]:
        """``samba-tool user setpassword`` over LDAP (fires both hooks)."""
        return self.samba_tool(
            "user", "setpassword", name, f"--newpassword={password}", *self.admin_args(),
            check=False,
        )  # fmt: skip

    def kpasswd(self, name: str, old: str, new: str) -> subprocess.CompletedProcess[bytes]:
        """The user's own change with MIT ``kpasswd`` (kpasswd protocol to the KDC)."""
        return run_command(
            self.in_netns(["kpasswd", f"{name}@{REALM}"]),
            env=self.env(),
            input=f"{old}\n{new}\n{new}\n".encode(),
            check=False,
            timeout=60,
        )

    def ldaps_set_unicode_pwd(self, name: str, password: str) -> subprocess.CompletedProcess[bytes]:
        """An administrator's reset over LDAPS: replace ``unicodePwd`` (UTF-16LE, quoted)."""
        import base64

        value = base64.b64encode(f'"{password}"'.encode("utf-16-le")).decode()
        dn = f"CN={name},CN=Users,{base_dn()}"
        ldif = f"dn: {dn}\nchangetype: modify\nreplace: unicodePwd\nunicodePwd:: {value}\n"
        pw_file = self.root / ".admin"
        pw_file.write_text(ADMIN_PASSWORD)
        pw_file.chmod(0o600)
        return run_command(
            self.in_netns(
                [
                    "ldapmodify", "-x", "-H", "ldaps://127.0.0.1",
                    "-D", f"CN=Administrator,CN=Users,{base_dn()}", "-y", str(pw_file),
                ]
            ),
            env=self.env(),
            input=ldif.encode(),
            check=False,
        )  # fmt: skip

    # -- syncpasswords ----------------------------------------------------------------------

    def init_syncpasswords(self, script: Path) -> None:
        self.samba_tool(
            "user", "syncpasswords", "--cache-ldb-initialize", "--decrypt-samba-gpg",
            f"--attributes={SYNC_ATTRIBUTES}", f"--script={script}",
        )  # fmt: skip

    def start_syncpasswords(self) -> None:
        assert self.sync_proc is None or self.sync_proc.poll() is not None
        log = self.sync_log.open("ab")
        self.sync_proc = subprocess.Popen(
            self.in_netns(["samba-tool", "user", "syncpasswords", "-s", str(self.conf)]),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env(),
        )
        log.close()

    def stop_syncpasswords(self) -> None:
        if self.sync_proc is not None and self.sync_proc.poll() is None:
            self.sync_proc.send_signal(signal.SIGTERM)
            try:
                self.sync_proc.wait(15)
            except subprocess.TimeoutExpired:
                self.sync_proc.kill()
                self.sync_proc.wait(10)

    def sync_log_tail(self, lines: int = 40) -> str:
        try:
            text = self.sync_log.read_text(errors="replace")
        except OSError:
            return "(no syncpasswords log)"
        return "\n".join(text.splitlines()[-lines:])


def base_dn() -> str:
    return ",".join(f"DC={part}" for part in REALM.lower().split("."))


# -- pytest fixtures (re-export them from a conftest.py; they need the ``testing`` extra) ---


def _provisioned_template() -> Iterator[SambaTemplate]:
    """The domain, provisioned once per session (~4 s)."""
    template = SambaTemplate.provision()
    yield template
    template.remove()


def _started_dc(samba_template: SambaTemplate) -> Iterator[SambaDC]:
    """A started DC without a check password script; destroyed at teardown."""
    dc = SambaDC(samba_template)
    try:
        dc.start()
        yield dc
    finally:
        dc.destroy()


_FIXTURES: FixtureTable = {
    "samba_template": ("session", _provisioned_template),
    "samba_dc": ("function", _started_dc),
}


def __getattr__(name: str) -> Any:
    """The fixtures, built on first import (see ``adsync.testing.fixtures``): pytest is
    imported only then, so a production install imports this module."""
    return fixture_attribute(__name__, _FIXTURES, name)
