"""Samba hook start-up cost: samba-check and samba-sync ÷ ``python3 -c pass``, side by side.

Samba starts one hook process per password event (the check script before the
change, the syncpasswords script after it), so what a user feels is the hook's
whole process: interpreter start, imports, config read, one round trip on the
daemon's Unix socket. Every round runs each variant once, in turn, against the
same answering ingest server (a child process: ``IngestServer`` with a handler
that accepts everything), and the medians of wall time and CPU (user + system of
the child, from ``wait4``) are divided by those of ``python -c pass`` run with
the same interpreter.

Variants:
  hook script   the scripts `adsync samba setup` writes (python -I -S, adsync.hooks.main)
  adsync CLI    `python -m adsync hook …` (the smb.conf line setup wrote before);
                ``--cli-src DIR`` runs it from another checkout (e.g. main's src/ for
                the figure before this change)

Goal (issue 16): hook script ≤ 2x for both. Run: .venv/bin/python bench/hooks.py
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

GUID = "abf599a2-49c1-4d58-afa1-7cf29a54d1a7"
PASSWORD = "Bench-Pässw0rd-1"


async def _serve(path: str) -> None:
    from adsync.ingest.handler import Ack, AckStatus, Peer
    from adsync.ingest.server import IngestServer
    from adsync.plugin import Candidate, Change, CheckResult

    class Accept:
        async def store_changes(self, changes: Sequence[Change], peer: Peer) -> list[Ack]:
            return [Ack(AckStatus.STORED)] * len(changes)

        async def check(self, candidate: Candidate, peer: Peer) -> CheckResult:
            return CheckResult.accept()

    server = IngestServer(Accept(), unix_path=Path(path), allowed_uids={os.getuid()})
    await server.start()
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await server.stop()


def ldif(kvno: int) -> bytes:
    secret = base64.b64encode(PASSWORD.encode()).decode()
    return (
        "dn: CN=alice,CN=Users,DC=adsync,DC=test\n"
        f"objectGUID: {GUID}\nobjectSid: S-1-5-21-1-2-3-1102\nsAMAccountName: alice\n"
        f"pwdLastSet: 0\nmsDS-KeyVersionNumber: {kvno}\nvirtualClearTextUTF8:: {secret}\n"
    ).encode()


def run_once(argv: list[str], stdin: bytes, env: dict[str, str]) -> tuple[float, float, int]:
    started = time.perf_counter()
    proc = subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
    )
    assert proc.stdin is not None
    proc.stdin.write(stdin)
    proc.stdin.close()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    return wall, usage.ru_utime + usage.ru_stime, proc.returncode


def config(root: Path, name: str, sock: Path) -> Path:
    path = root / f"{name}.yaml"
    path.write_text(
        f"ingest:\n  unix_socket: {sock}\nqueue:\n  path: {root / name}/queue.db\n"
        "samba:\n  initial_dump: forward\n"
    )
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--cli-src", default=None, help="src/ of the checkout the CLI runs from")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(_serve(args.serve))
        return

    from adsync.hooks.install import hook_script

    py = sys.executable
    with tempfile.TemporaryDirectory(prefix="adsync-bench-hooks-", dir="/tmp") as tmp:
        root = Path(tmp)
        sock = root / "s.sock"
        server = subprocess.Popen(
            [py, __file__, "--serve", str(sock)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            assert server.stdout is not None
            while server.stdout.readline().strip() != "ready":
                if server.poll() is not None:
                    raise SystemExit("the ingest server did not start")
            new_conf, cli_conf = config(root, "hook", sock), config(root, "cli", sock)
            scripts = {}
            for name in ("samba-check", "samba-sync"):
                script = root / f"{name}-hook"
                script.write_text(hook_script(name, []))
                script.chmod(0o755)
                scripts[name] = str(script)
            cli_env = dict(os.environ)
            if args.cli_src:
                cli_env["PYTHONPATH"] = args.cli_src
            env = dict(os.environ, SAMBA_CPS_ACCOUNT_NAME="alice")
            cli_env["SAMBA_CPS_ACCOUNT_NAME"] = "alice"
            cli = [py, "-m", "adsync", "hook"]
            variants = {
                "python -c pass": ([py, "-c", "pass"], env, None),
                "samba-check hook script": (
                    [scripts["samba-check"], "--config", str(new_conf), "--domain", "ADSYNC"],
                    env,
                    None,
                ),
                "samba-check adsync CLI": (
                    [*cli, "samba-check", "--config", str(cli_conf)],
                    cli_env,
                    None,
                ),
                "samba-sync hook script": (
                    [scripts["samba-sync"], "--config", str(new_conf), "--domain", "ADSYNC"],
                    env,
                    "sync",
                ),
                "samba-sync adsync CLI": (
                    [*cli, "samba-sync", "--config", str(cli_conf)],
                    cli_env,
                    "sync",
                ),
            }
            results: dict[str, list[tuple[float, float]]] = {k: [] for k in variants}
            for round_ in range(args.runs + 2):
                for name, (argv, variant_env, kind) in variants.items():
                    stdin = ldif(round_ + 1) if kind == "sync" else PASSWORD.encode()
                    wall, cpu, code = run_once(argv, stdin, variant_env)
                    if code != 0:
                        raise SystemExit(f"{name} exited {code}")
                    if round_ >= 2:  # two warm-up rounds (page cache, .pyc files)
                        results[name].append((wall, cpu))
        finally:
            if server.stdin is not None:
                server.stdin.close()
            server.wait(10)
    base_wall = statistics.median(w for w, _ in results["python -c pass"])
    base_cpu = statistics.median(c for _, c in results["python -c pass"])
    print(f"{args.runs} rounds, each variant once per round; medians; python = {py}")
    print(f"{'variant':28} {'wall ms':>8} {'cpu ms':>8} {'wall x':>7} {'cpu x':>7}")
    for name, samples in results.items():
        wall = statistics.median(w for w, _ in samples)
        cpu = statistics.median(c for _, c in samples)
        print(
            f"{name:28} {wall * 1000:8.1f} {cpu * 1000:8.1f} "
            f"{wall / base_wall:7.2f} {cpu / base_cpu:7.2f}"
        )
    print("goal (issue 16): hook script ≤ 2.0x python -c pass, wall and CPU")


if __name__ == "__main__":
    main()
