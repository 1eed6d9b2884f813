"""A real OpenLDAP ``slapd`` on loopback, for LDAP backend tests.

The server runs from a temp ``slapd.conf`` (mdb database, ppolicy overlay), with a
CA and server certificate made here, an LDAPS port and a plain port that offers
StartTLS. The DIT has a few users and a service account (``cn=adsync``) that may
write ``userPassword``. If slapd cannot start, ``start`` raises with the tail of
its log: a test that needs it fails with the reason, it never skips.

Plugin authors use the ``slapd`` pytest fixture (re-export it from a conftest:
``from adsync.testing.slapd import slapd``; it needs the ``testing`` extra) or
``SlapdServer`` directly. pytest is imported only when the fixture is: the module
imports in a production install.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adsync.testing.fixtures import FixtureTable, fixture_attribute

SUFFIX = "dc=example,dc=test"
PEOPLE = f"ou=people,{SUFFIX}"
ROOT_DN = f"cn=admin,{SUFFIX}"
SERVICE_DN = f"cn=adsync,{SUFFIX}"
POLICY_DN = f"cn=default,ou=policies,{SUFFIX}"
POLICY_MIN_LENGTH = 12
"""ppolicy's ``pwdMinLength``: a shorter password is a constraint violation."""

USERS = ("alice", "bob", "carol", "x*y")
"""``x*y`` exists so that an escaped ``*`` can be shown to match it, and only it."""

MODULE_DIR = Path("/usr/lib/ldap")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class TlsFiles:
    ca_cert: Path
    server_cert: Path
    server_key: Path


def make_tls_files(directory: Path, host_ip: str = "127.0.0.1") -> TlsFiles:
    """A throwaway CA and a server certificate for ``host_ip`` and ``localhost``."""
    from adsync.testing.tls import make_self_signed

    files = make_self_signed(directory, extra_ips=(host_ip,))
    return TlsFiles(files.ca_file, files.cert_file, files.key_file)


def user_dn(uid: str) -> str:
    escaped = uid.replace("\\", "\\5c").replace(",", "\\2c").replace("+", "\\2b")
    return f"uid={escaped},{PEOPLE}"


def initial_password(uid: str) -> str:
    """Each user's password before a test changes it (long enough for the policy)."""
    return f"Initial-{uid}-Passw0rd!"


@dataclass
class SlapdServer:
    """One slapd process; ``stop``/``start`` may be repeated (same data, same ports)."""

    workdir: Path
    root_password: str = "root-secret-123"  # noqa: S105 (a throwaway test server)
    service_password: str = "adsync-secret-123"  # noqa: S105
    ldap_port: int = field(default_factory=free_port)
    ldaps_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.tls = make_tls_files(self.workdir / "tls")
        self.conf = self.workdir / "slapd.conf"
        self.db_dir = self.workdir / "db"
        self.log_path = self.workdir / "slapd.log"
        self.pid_file = self.workdir / "slapd.pid"
        self._write_config()
        self._load_data()

    @property
    def ldap_url(self) -> str:
        return f"ldap://127.0.0.1:{self.ldap_port}"

    @property
    def ldaps_url(self) -> str:
        return f"ldaps://127.0.0.1:{self.ldaps_port}"

    @property
    def service_password_file(self) -> Path:
        path = self.workdir / "bind.secret"
        if not path.exists():
            path.write_text(self.service_password + "\n")
            path.chmod(0o600)
        return path

    # -- setup ------------------------------------------------------------------------------

    def _write_config(self) -> None:
        schema = Path("/etc/ldap/schema")
        self.db_dir.mkdir(parents=True, exist_ok=True)
        self.conf.write_text(
            f"""\
include {schema}/core.schema
include {schema}/cosine.schema
include {schema}/nis.schema
include {schema}/inetorgperson.schema
modulepath {MODULE_DIR}
moduleload back_mdb
moduleload ppolicy
pidfile {self.pid_file}
argsfile {self.workdir / "slapd.args"}
TLSCACertificateFile {self.tls.ca_cert}
TLSCertificateFile {self.tls.server_cert}
TLSCertificateKeyFile {self.tls.server_key}
loglevel stats

database mdb
maxsize 67108864
suffix "{SUFFIX}"
rootdn "{ROOT_DN}"
rootpw {self.root_password}
directory {self.db_dir}
overlay ppolicy
ppolicy_default "{POLICY_DN}"
ppolicy_hash_cleartext
password-hash {{SSHA}}

access to attrs=userPassword
    by dn.exact="{SERVICE_DN}" write
    by self write
    by anonymous auth
    by * none
access to *
    by * read
"""
        )

    def _ldif(self) -> str:
        parts = [
            f"dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\n"
            "dc: example\no: adsync test\n",
            f"dn: {PEOPLE}\nobjectClass: organizationalUnit\nou: people\n",
            f"dn: ou=policies,{SUFFIX}\nobjectClass: organizationalUnit\nou: policies\n",
            f"dn: {POLICY_DN}\nobjectClass: device\nobjectClass: pwdPolicy\ncn: default\n"
            f"pwdAttribute: userPassword\npwdMinLength: {POLICY_MIN_LENGTH}\n"
            "pwdCheckQuality: 2\npwdAllowUserChange: TRUE\n",
            f"dn: {SERVICE_DN}\nobjectClass: organizationalRole\n"
            "objectClass: simpleSecurityObject\ncn: adsync\n"
            f"userPassword: {self.service_password}\n",
        ]
        for uid in USERS:
            parts.append(
                f"dn: {user_dn(uid)}\nobjectClass: inetOrgPerson\nuid: {uid}\n"
                f"cn: {uid}\nsn: {uid}\nuserPassword: {initial_password(uid)}\n"
            )
        return "\n".join(parts)

    def _load_data(self) -> None:
        ldif = self.workdir / "data.ldif"
        ldif.write_text(self._ldif())
        result = subprocess.run(
            ["slapadd", "-f", str(self.conf), "-l", str(ldif)],
            capture_output=True,
            text=True,
            check=False,
        )
        ldif.unlink()
        if result.returncode != 0:
            raise RuntimeError(f"slapadd failed ({result.returncode}):\n{result.stderr[-2000:]}")

    # -- life cycle -------------------------------------------------------------------------

    def start(self, wait: float = 15.0) -> None:
        if shutil.which("slapd") is None and not Path("/usr/sbin/slapd").exists():
            raise RuntimeError("slapd is not installed (apt-get install slapd ldap-utils)")
        assert self.proc is None or self.proc.poll() is not None, "slapd already running"
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                "/usr/sbin/slapd",
                "-f",
                str(self.conf),
                "-h",
                f"{self.ldap_url}/ {self.ldaps_url}/",
                "-d",
                "stats",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"slapd exited with {self.proc.returncode}:\n{self.log_tail()}")
            if self._accepts(self.ldap_port) and self._accepts(self.ldaps_port):
                return
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"slapd did not listen within {wait}s:\n{self.log_tail()}")

    @staticmethod
    def _accepts(port: int) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    # -- observations (with the OpenLDAP tools, independent of the code under test) ---------

    def _tool_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["LDAPTLS_CACERT"] = str(self.tls.ca_cert)
        env["LDAPTLS_REQCERT"] = "demand"
        env["LDAPCONF"] = "/dev/null"
        return env

    def can_bind(self, dn: str, password: str) -> bool:
        """A simple bind over LDAPS as ``dn``; the password goes through a file, not argv."""
        pw_file = self.workdir / ".probe"
        pw_file.write_text(password)
        pw_file.chmod(0o600)
        try:
            result = subprocess.run(
                ["ldapwhoami", "-x", "-H", self.ldaps_url, "-D", dn, "-y", str(pw_file)],
                capture_output=True,
                text=True,
                env=self._tool_env(),
                timeout=20,
                check=False,
            )
        finally:
            pw_file.unlink()
        if result.returncode not in (0, 49):
            raise RuntimeError(f"ldapwhoami failed unexpectedly: {result.stderr.strip()}")
        return result.returncode == 0

    def stored_password_value(self, uid: str) -> str:
        """The stored ``userPassword`` (hashed by slapd), read as the root DN via slapcat."""
        result = subprocess.run(
            ["slapcat", "-f", str(self.conf), "-a", f"(uid={uid})"],
            capture_output=True,
            text=True,
            check=False,
        )
        for line in result.stdout.splitlines():
            if line.lower().startswith("userpassword:"):
                return line.split(":", 2)[-1].strip()
        return ""

    def __enter__(self) -> SlapdServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _running_slapd(tmp_path: Path) -> Iterator[SlapdServer]:
    """A running slapd with the test DIT; stopped (by pid) at teardown."""
    server = SlapdServer(tmp_path / "slapd")
    with server:
        yield server


_FIXTURES: FixtureTable = {"slapd": ("function", _running_slapd)}


def __getattr__(name: str) -> Any:
    """The ``slapd`` fixture, built on first import (see ``adsync.testing.fixtures``)."""
    return fixture_attribute(__name__, _FIXTURES, name)
