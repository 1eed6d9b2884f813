"""Policy pre-checks: ask every listed backend at once, decide within the deadline.

Any reject rejects; all accept accepts; anything else (a timeout, an undecided
answer, an error) leaves the decision to ``on_undecided``, so that AD keeps
working when an identity system is down, or stays strict if the operator said so.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import structlog

from adsync.plugin import (
    Backend,
    Candidate,
    CheckResult,
    Verdict,
    reset_check_deadline,
    set_check_deadline,
)

log = structlog.get_logger("adsync.precheck")

OnUndecided = Literal["accept", "reject"]


def combine(answers: Mapping[str, CheckResult | None], on_undecided: OnUndecided) -> CheckResult:
    """The verdict from each backend's answer (None: no answer in time)."""
    for name, answer in sorted(answers.items()):
        if answer is not None and answer.verdict is Verdict.REJECT:
            return CheckResult.reject(answer.reason or f"rejected by {name}")
    silent = sorted(
        name
        for name, answer in answers.items()
        if answer is None or answer.verdict is not Verdict.ACCEPT
    )
    if not silent:
        return CheckResult.accept()
    reason = f"undecided ({', '.join(silent)}); on_undecided={on_undecided}"
    if on_undecided == "reject":
        return CheckResult.reject(reason)
    return CheckResult.accept(reason)


async def _ask(backend: Backend[Any], candidate: Candidate) -> CheckResult | None:
    try:
        return await backend.check(candidate)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # a plugin bug must not decide a password; log the type only
        log.warning("precheck_error", backend=backend.name, error=type(exc).__name__)
        return None


async def precheck(
    candidate: Candidate,
    backends: Sequence[Backend[Any]],
    *,
    within: float,
    on_undecided: OnUndecided,
    unanswered: Sequence[str] = (),
) -> CheckResult:
    """Ask the backends concurrently; return as soon as one rejects or all answered.

    ``unanswered``: listed backends that cannot be asked (their plugin did not start);
    they count as no answer, so ``on_undecided`` decides as for a timeout.
    """
    if not backends and not unanswered:
        return CheckResult.accept("no policy check configured")
    token = set_check_deadline(within)  # tasks copy the context: plugins see the deadline
    try:
        tasks = {asyncio.ensure_future(_ask(b, candidate)): b.name for b in backends}
    finally:
        reset_check_deadline(token)
    answers: dict[str, CheckResult | None] = dict.fromkeys([*unanswered, *tasks.values()])
    pending = set(tasks)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    try:
        while pending:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            done, pending = await asyncio.wait(
                pending, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
            )
            for task in done:
                answer = task.result()
                answers[tasks[task]] = answer
                if answer is not None and answer.verdict is Verdict.REJECT:
                    return combine(answers, on_undecided)
    finally:
        for task in pending:
            task.cancel()
    return combine(answers, on_undecided)
