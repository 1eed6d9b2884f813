"""Two real Samba AD DCs of one domain, replicating, each in a network namespace of its own.

DC1 is a ``SambaDC`` copied from the session's template; DC2 is joined to it with
``samba-tool domain join adsync.test DC``. The namespaces are connected by a veth
pair this module creates, with private test addresses that exist only inside them
(``10.231.0.1`` / ``10.231.0.2``). Names resolve through ``/etc/netns/NAME/hosts``
(``ip netns exec`` bind-mounts it over ``/etc/hosts``): the DCs' names and their
``NTDS-GUID._msdcs`` replication names; there is no DNS server.

Replication is pulled on demand with ``samba-tool drs replicate DEST SOURCE NC --local``
(NTLM, no KDC lookup): Samba's own scheduled replication needs DNS to locate the KDC
(``WERR_NO_LOGON_SERVERS`` without it), and a test should not wait for a schedule.
Everything is removed at ``destroy``: both samba processes (by pid), the namespaces,
their ``/etc/netns`` directories, the gpg agents.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import time
import urllib.parse
import uuid
from pathlib import Path

from adsync.testing.samba_dc import (
    ADMIN_PASSWORD,
    REALM,
    SambaDC,
    SambaError,
    SambaTemplate,
    base_dn,
    run_command,
    short_tempdir,
    stop_gpg_agent,
    write_smb_conf,
)

DC1_IP, DC2_IP = "10.231.0.1", "10.231.0.2"
NETS = "/etc/netns"


def _no_scheduled_replication(conf: str) -> str:
    """Without ``drepl`` and ``kcc``: their outbound calls (no DNS here) stalled a
    ``-M single`` samba for a minute at a time; the tests replicate on demand."""
    return conf.replace(", drepl,", ",").replace(", kcc", "")


class SambaPair:
    """``start()`` builds both DCs; ``dc1`` is a ``SambaDC``, DC2 is driven by methods here."""

    def __init__(self, template: SambaTemplate) -> None:
        self.template = template
        self.dc1 = SambaDC(template)
        self.ns1 = self.dc1.netns
        self.ns2 = self.dc1.netns + "-2"
        self.root2 = short_tempdir("adsync-dc2-")
        self.target2 = self.root2 / "dc"
        self.conf2 = self.target2 / "etc" / "smb.conf"
        self.proc2: subprocess.Popen[bytes] | None = None
        self._ns2 = False

    # -- environment ----------------------------------------------------------------------

    def env2(self) -> dict[str, str]:
        return {
            **os.environ,
            "GNUPGHOME": str(self.root2 / "gnupg"),
            "KRB5_CONFIG": str(self.root2 / "krb5.conf"),
            "LDAPCONF": "/dev/null",
        }

    def ldapi(self, which: int) -> Path:
        """The privileged ldapi socket of DC ``which`` (1 or 2)."""
        target = self.dc1.target if which == 1 else self.target2
        return target / "private" / "ldap_priv" / "ldapi"

    def _hosts(self, extra: str = "") -> None:
        text = (
            "127.0.0.1 localhost\n"
            f"{DC1_IP} dc1.adsync.test dc1 adsync.test\n{DC2_IP} dc2.adsync.test dc2\n{extra}"
        )
        for ns in (self.ns1, self.ns2):
            d = Path(NETS) / ns
            d.mkdir(parents=True, exist_ok=True)
            # Rewritten in place: the bind mount of a running namespace keeps the inode.
            with open(d / "hosts", "w") as fh:
                fh.write(text)
            (d / "resolv.conf").write_text("nameserver 127.0.0.1\n")

    # -- life cycle ---------------------------------------------------------------------------

    def start(self) -> None:
        run_command(["ip", "netns", "add", self.ns1])
        self.dc1.adopt_netns()
        run_command(["ip", "netns", "add", self.ns2])
        self._ns2 = True
        for ns in (self.ns1, self.ns2):
            run_command(["ip", "-n", ns, "link", "set", "lo", "up"])
        run_command([
            "ip", "link", "add", "adsync-v1", "netns", self.ns1, "type", "veth",
            "peer", "name", "adsync-v2", "netns", self.ns2,
        ])  # fmt: skip
        for ns, dev, ip in ((self.ns1, "adsync-v1", DC1_IP), (self.ns2, "adsync-v2", DC2_IP)):
            run_command(["ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", dev])
            run_command(["ip", "-n", ns, "link", "set", dev, "up"])
        self._hosts()
        conf = self.dc1.conf.read_text().replace(
            "\tinterfaces = lo\n", f"\tinterfaces = lo {DC1_IP}/24\n"
        )
        self.dc1.conf.write_text(_no_scheduled_replication(conf))
        Path("/run/samba").mkdir(parents=True, exist_ok=True)
        self.dc1.proc = self._start_samba(
            self.ns1, self.dc1.conf, self.dc1.target, self.dc1.env(), self.dc1.log_path
        )
        self._join()
        self.proc2 = self._start_samba(
            self.ns2, self.conf2, self.target2, self.env2(), self.root2 / "samba.out"
        )
        g1, g2 = self._ntds_guid(1, "DC1"), self._ntds_guid(2, "DC2")
        self._hosts(f"{DC1_IP} {g1}._msdcs.adsync.test\n{DC2_IP} {g2}._msdcs.adsync.test\n")

    def _join(self) -> None:
        (self.root2 / "krb5.conf").write_text(
            f"[libdefaults]\n\tdefault_realm = {REALM}\n\tdns_lookup_kdc = false\n"
            f"\tdns_lookup_realm = false\n[realms]\n\t{REALM} = {{\n\t\tkdc = {DC1_IP}\n"
            f"\t\tadmin_server = {DC1_IP}\n\t}}\n"
        )
        run_command(["cp", "-a", str(self.template.gnupghome), str(self.root2 / "gnupg")])
        run_command(
            [
                "ip", "netns", "exec", self.ns2, "samba-tool", "domain", "join",
                REALM.lower(), "DC", f"--server={DC1_IP}", f"-UAdministrator%{ADMIN_PASSWORD}",
                f"--targetdir={self.target2}", "--dns-backend=NONE",
                f"--option=interfaces = lo {DC2_IP}/24", "--option=bind interfaces only = yes",
                "--option=netbios name = DC2", "--option=disable netbios = yes",
                f"--option=password hash gpg key ids = {self.template.fingerprint}",
            ],
            env=self.env2(),
            timeout=300,
        )  # fmt: skip
        conf = write_smb_conf(self.target2, self.template.fingerprint)
        conf.write_text(
            _no_scheduled_replication(
                conf.read_text()
                .replace("netbios name = DC1", "netbios name = DC2")
                .replace("\tinterfaces = lo\n", f"\tinterfaces = lo {DC2_IP}/24\n")
            )
        )

    @staticmethod
    def _start_samba(
        ns: str, conf: Path, target: Path, env: dict[str, str], log_path: Path, wait: float = 60.0
    ) -> subprocess.Popen[bytes]:
        """samba in ``ns`` with ``-M standard`` (a process per connection): with ``-M single``
        one stalled call (seen under load) made the DC unanswering for a minute."""
        script = (
            f"mount --bind {shlex.quote(str(target / 'run'))} /run/samba && "
            f"exec samba -F -s {shlex.quote(str(conf))} -M standard"
        )
        (target / "run").mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                ["ip", "netns", "exec", ns, "unshare", "--mount", "--propagation",
                 "private", "sh", "-c", script],
                stdout=log, stderr=subprocess.STDOUT, env=env,
            )  # fmt: skip
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SambaError(f"samba in {ns} exited with {proc.returncode}")
            probe = subprocess.run(
                ["ip", "netns", "exec", ns, "ldapsearch", "-x", "-H", "ldap://127.0.0.1",
                 "-b", "", "-s", "base"],
                capture_output=True, env=env, timeout=20, check=False,
            )  # fmt: skip
            if probe.returncode == 0:
                return proc
            time.sleep(0.2)
        proc.terminate()
        raise SambaError(f"samba's LDAP in {ns} did not answer within {wait}s")

    def _ntds_guid(self, which: int, name: str) -> uuid.UUID:
        ns = self.ns1 if which == 1 else self.ns2
        sock = urllib.parse.quote(str(self.ldapi(which)), safe="")
        dn = (
            f"CN=NTDS Settings,CN={name},CN=Servers,CN=Default-First-Site-Name,CN=Sites,"
            f"CN=Configuration,{base_dn()}"
        )
        result = run_command(
            ["ip", "netns", "exec", ns, "ldapsearch", "-LLL", "-x", "-H", f"ldapi://{sock}",
             "-D", f"CN=Administrator,CN=Users,{base_dn()}", "-w", ADMIN_PASSWORD,
             "-b", dn, "-s", "base", "objectGUID"],
            env=self.env2(),
        )  # fmt: skip
        for line in result.stdout.decode().splitlines():
            if line.startswith("objectGUID:: "):
                return uuid.UUID(bytes_le=base64.b64decode(line.split(":: ", 1)[1]))
        raise SambaError(f"no objectGUID for {name}'s NTDS Settings")

    def destroy(self) -> None:
        if self.proc2 is not None and self.proc2.poll() is None:
            self.proc2.send_signal(signal.SIGTERM)
            try:
                self.proc2.wait(20)
            except subprocess.TimeoutExpired:
                self.proc2.kill()
                self.proc2.wait(10)
        self.dc1.destroy()  # also deletes ns1 (and with it the veth pair)
        if self._ns2:
            run_command(["ip", "netns", "del", self.ns2], check=False)
            self._ns2 = False
        for ns in (self.ns1, self.ns2):
            shutil.rmtree(Path(NETS) / ns, ignore_errors=True)
        with contextlib.suppress(OSError):
            Path(NETS).rmdir()  # only if empty: another test's namespaces keep it
        stop_gpg_agent(self.root2 / "gnupg")
        shutil.rmtree(self.root2, ignore_errors=True)

    # -- driving it ---------------------------------------------------------------------------

    def samba_tool(
        self, which: int, *args: str, check: bool = True
    ) -> subprocess.CompletedProcess[bytes]:
        ns, conf, env = (
            (self.ns1, self.dc1.conf, self.dc1.env()) if which == 1
            else (self.ns2, self.conf2, self.env2())
        )  # fmt: skip
        return run_command(["ip", "netns", "exec", ns, "samba-tool", *args, "-s", str(conf)],
                    env=env, check=check)  # fmt: skip

    def create_user(self, which: int, name: str, password: str) -> None:
        """Over DC ``which``'s LDAP: a direct write to sam.ldb beside the running samba left
        DC1's RPC server unanswering (DRS connections timed out) in Samba 4.17."""
        self.samba_tool(
            which, "user", "create", name, password,
            "-H", "ldap://127.0.0.1", f"-UAdministrator%{ADMIN_PASSWORD}",
        )  # fmt: skip

    def set_password(self, which: int, name: str, password: str) -> None:
        """An originating password write on DC ``which`` (over its loopback LDAP)."""
        self.samba_tool(
            which, "user", "setpassword", name, f"--newpassword={password}",
            "-H", "ldap://127.0.0.1", f"-UAdministrator%{ADMIN_PASSWORD}",
        )  # fmt: skip

    def replicate(self, dest: int, source: int) -> None:
        """Pull the domain partition from DC ``source`` into DC ``dest`` now."""
        self.samba_tool(
            dest, "drs", "replicate", f"dc{dest}", f"dc{source}", base_dn(), "--local",
            "--use-kerberos=off", f"-UAdministrator%{ADMIN_PASSWORD}",
        )  # fmt: skip


__all__ = ["DC1_IP", "DC2_IP", "SambaPair"]
