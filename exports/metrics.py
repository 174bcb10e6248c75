"""Prometheus metrics read from the database at scrape time: how many snapshots and conversions are in each
status, and how many jobs wait to start. One GROUP BY query per table, no per-user or per-project labels."""

import logging
from collections.abc import Iterator

from django.db import DatabaseError
from django.db.models import Count
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from exports.models import ConvertedFormat, Export, JobFields, Status

logger = logging.getLogger(__name__)


def count_by_status(model: type[JobFields]) -> dict[str, int]:
    """Rows of `model` in each status, every status present (0 when none)."""
    counts = {str(value): 0 for value in Status.values}
    for status, n in model.objects.order_by().values_list("status").annotate(n=Count("pk")):
        counts[str(status)] = n
    return counts


class ExportCollector(Collector):
    """Gauges computed when scraped (never cached): the database is the one source of truth across processes."""

    def describe(self) -> Iterator[GaugeMetricFamily]:
        # Names only, so registering the collector runs no query.
        yield GaugeMetricFamily("lsexport_database_up", "")
        yield from self._families()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily("lsexport_database_up", "Whether the metrics queries reached the database.")
        snapshots_gauge, conversions_gauge, waiting_gauge = self._families()
        try:
            snapshots = count_by_status(Export)
            conversions = count_by_status(ConvertedFormat)
        except DatabaseError:
            logger.exception("Could not read export metrics from the database")
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        for status, n in snapshots.items():
            snapshots_gauge.add_metric([status], n)
        for status, n in conversions.items():
            conversions_gauge.add_metric([status], n)
        waiting_gauge.add_metric([], snapshots[Status.CREATED] + conversions[Status.CREATED])
        yield up
        yield snapshots_gauge
        yield conversions_gauge
        yield waiting_gauge

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily("lsexport_snapshots", "Snapshots (exports) by status.", labels=["status"]),
            GaugeMetricFamily("lsexport_conversions", "Conversions (converted formats) by status.", labels=["status"]),
            GaugeMetricFamily("lsexport_jobs_waiting", "Snapshot and conversion jobs created and not yet started."),
        )
