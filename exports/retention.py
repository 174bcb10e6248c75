"""Retention: remove snapshots older than a number of days, with their conversions and files.

Run by the periodic sweep (`exports.recovery.jobs_recover`) when `EXPORT_RETENTION_DAYS` is set, and by
`manage.py purge_exports`. A snapshot still being written, or one with a conversion being written, is kept until
its job ends; the next sweep removes it.
"""

import math
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from exports.models import Export, Status
from exports.services import exports_delete

__all__ = ["expired_exports", "exports_purge", "retention_sweep"]


def expired_exports(*, older_than_days: float) -> QuerySet[Export]:
    """Snapshots created more than `older_than_days` days ago whose snapshot and conversions are not being written."""
    if not math.isfinite(older_than_days) or older_than_days < 0:
        raise ValueError(f"The age must be a number of days, 0 or more (not {older_than_days}).")
    cutoff = timezone.now() - timedelta(days=older_than_days)
    return (
        Export.objects.filter(created_at__lt=cutoff)
        .exclude(status=Status.IN_PROGRESS)
        .exclude(converted_formats__status=Status.IN_PROGRESS)
        .order_by("pk")
    )


def exports_purge(*, older_than_days: float, dry_run: bool = False) -> list[int]:
    """Delete the snapshots `expired_exports` finds, with their conversions and files; returns their ids.

    With `dry_run`, only returns the ids. The rows are locked as they are read, so a job claiming one meanwhile
    waits, then finds it gone; a row that went `in_progress` before the lock no longer matches and is kept.
    """
    expired = expired_exports(older_than_days=older_than_days)
    found = list(expired.values_list("pk", flat=True))
    if dry_run or not found:  # a sweep with nothing to remove takes no lock
        return found
    with transaction.atomic():
        ids = list(expired.select_for_update(of=("self",)).values_list("pk", flat=True))
        if ids:  # files are removed once this transaction commits
            exports_delete(exports=Export.objects.filter(pk__in=ids))
    return ids


def retention_sweep() -> list[int]:
    """Purge the snapshots older than `EXPORT_RETENTION_DAYS` (None, the default: keep them forever)."""
    days = settings.EXPORT_RETENTION_DAYS
    if days is None:
        return []
    return exports_purge(older_than_days=days)
