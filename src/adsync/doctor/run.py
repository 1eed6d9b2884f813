"""Run every check in order; the targets' probes (async) feed the clock check."""

from __future__ import annotations

import asyncio

from adsync.doctor import local, samba, targets, windows
from adsync.doctor.model import Context, Result


def run_all(ctx: Context) -> list[Result]:
    results: list[Result] = []
    results += local.secrets(ctx)
    results += local.files(ctx)
    results += local.ports(ctx)
    results += local.queue(ctx)
    results += local.daemon(ctx)
    results += asyncio.run(targets.targets(ctx))
    results += samba.samba(ctx)
    results += windows.filter_dll(ctx)
    results += local.clock(ctx)
    return results
