"""The hooks' entry point: ``main(["samba-check" | "samba-sync", *options])``.

Samba starts one process per password event, so this is what those processes
run: the hook scripts ``adsync samba setup`` writes start Python with ``-I -S``
(no site-packages scan, no environment) and call ``main`` directly. No click, no
argparse, no pydantic, no ``typing``: only what the Unix socket path needs
(``tests/unit/hooks/test_hook_imports.py`` pins the set of modules).
``adsync hook samba-check|samba-sync`` reaches the same ``main`` through the CLI.
"""

from __future__ import annotations

import os
import sys

USAGE = (
    "usage: samba-check --config PATH [--on-undecided accept|reject] [--domain NAME]"
    " [--backoff SECONDS]\n"
    "       samba-sync --config PATH [--domain NAME] [--max-wait SECONDS]\n"
)
_OPTIONS = {
    "samba-check": ("--config", "--on-undecided", "--domain", "--backoff"),
    "samba-sync": ("--config", "--domain", "--max-wait"),
}
EXIT_USAGE = 2


class UsageError(ValueError):
    pass


def parse(argv: list[str]) -> tuple[str, dict[str, str]]:
    """``(command, {option: value})``; ``--opt value`` and ``--opt=value`` both accepted."""
    if not argv or argv[0] not in _OPTIONS:
        raise UsageError("the first argument must be samba-check or samba-sync")
    command, allowed, found = argv[0], _OPTIONS[argv[0]], {}
    rest = argv[1:]
    while rest:
        name, eq, value = rest.pop(0).partition("=")
        if name not in allowed:
            raise UsageError(f"{command}: unknown option {name}")
        if not eq:
            if not rest:
                raise UsageError(f"{command}: {name} needs a value")
            value = rest.pop(0)
        found[name] = value
    if "--config" not in found:
        raise UsageError(f"{command}: --config is required")
    if found.get("--on-undecided", "accept") not in ("accept", "reject"):
        raise UsageError(f"{command}: --on-undecided must be accept or reject")
    return command, found


def _seconds(options: dict[str, str], name: str) -> float | None:
    if name not in options:
        return None
    try:
        value = float(options[name])
    except ValueError:
        raise UsageError(f"{name} must be a number of seconds") from None
    if value < 0:
        raise UsageError(f"{name} must not be negative")
    return value


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        command, options = parse(args)
        backoff = _seconds(options, "--backoff")
        max_wait = _seconds(options, "--max-wait")
    except UsageError as exc:
        sys.stderr.write(f"adsync hook: {exc}\n{USAGE}")
        return EXIT_USAGE
    stdin = sys.stdin.buffer.read()
    if command == "samba-check":
        from adsync.hooks.samba_check import CheckOptions, run_check

        check = CheckOptions(
            options["--config"],
            on_undecided=options.get("--on-undecided", "accept"),
            domain=options.get("--domain", ""),
        )
        if backoff is not None:
            check.backoff = backoff
        code, message = run_check(check, dict(os.environ), stdin)
        sys.stderr.write(f"adsync samba-check: {message}\n")
        return code
    from adsync.hooks.samba_sync import SyncOptions, run_sync

    result = run_sync(
        SyncOptions(options["--config"], domain=options.get("--domain", ""), max_wait=max_wait),
        stdin,
    )
    sys.stdout.write(result.output())
    sys.stdout.flush()
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main())
