"""Metrics of the directory connection and of the last gap audit (read at scrape time)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from adsync.directory.audit import read_state
from adsync.directory.client import DirectoryStats


class DirectoryCollector(Collector):
    def __init__(
        self, stats: Callable[[], DirectoryStats | None], queue_path: Callable[[], Path | None]
    ) -> None:
        self._stats = stats
        self._queue_path = queue_path

    @classmethod
    def register(
        cls,
        registry: CollectorRegistry,
        stats: Callable[[], DirectoryStats | None],
        queue_path: Path | None,
    ) -> None:
        registry.register(cls(stats, lambda: queue_path))

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        stats = self._stats()
        if stats is not None:
            for name, text, value in (
                ("adsync_directory_lookups", "Account lookups asked of the directory.",
                 stats.lookups),
                ("adsync_directory_cache_hits", "Lookups answered from the cache.",
                 stats.cache_hits),
                ("adsync_directory_searches", "LDAP searches sent to the directory.",
                 stats.searches),
                ("adsync_directory_errors", "Directory connections or searches that failed.",
                 stats.errors),
            ):  # fmt: skip
                counter = CounterMetricFamily(name, text)
                counter.add_metric([], value)
                yield counter
            up = GaugeMetricFamily(
                "adsync_directory_up", "1 if the last directory search succeeded."
            )
            ok, err = stats.last_ok_at or 0.0, stats.last_error_at or 0.0
            up.add_metric([], 1.0 if ok >= err and ok > 0 else 0.0)
            yield up
        audit = read_state(self._queue_path())
        if audit is not None:
            gaps = GaugeMetricFamily(
                "adsync_audit_gaps",
                "Password changes made on this DC that no capture matched, at the last audit.",
            )
            gaps.add_metric([], float(audit.get("gaps") or 0))
            yield gaps
            last = GaugeMetricFamily(
                "adsync_audit_last_run_timestamp_seconds", "When adsync audit last ran."
            )
            last.add_metric([], float(audit.get("at") or 0))
            yield last
