"""Remove snapshots older than a number of days, with their conversions and files (`exports.retention`)."""

import math

from django.core.management.base import BaseCommand, CommandError

from exports.models import Export
from exports.retention import expired_exports, exports_purge


def days(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not math.isfinite(number) or number < 0:
        raise CommandError(f"--older-than must be a number of days, 0 or more (not {value!r}).")
    return number


class Command(BaseCommand):
    help = (
        "Delete snapshots created more than --older-than days ago, with their conversions and files. "
        "Snapshots still being written are kept."
    )

    def add_arguments(self, parser):
        parser.add_argument("--older-than", required=True, metavar="DAYS", help="Age in days (a decimal is fine).")
        parser.add_argument("--dry-run", action="store_true", help="List what would be removed; remove nothing.")

    def handle(self, *args, older_than, dry_run, **options):
        older_than_days = days(older_than)
        described = {
            export.pk: export for export in expired_exports(older_than_days=older_than_days).select_related("project")
        }
        removed = exports_purge(older_than_days=older_than_days, dry_run=dry_run)
        verb = "Would remove" if dry_run else "Removed"
        for pk in removed:
            self.stdout.write(f"{verb} {describe(described.get(pk), pk)}")
        self.stdout.write(f"{verb} {len(removed)} snapshot(s) older than {older_than_days:g} day(s).")


def describe(export: Export | None, pk: int) -> str:
    if export is None:
        return f"export #{pk}"
    created = export.created_at.isoformat(timespec="seconds")
    return f"export #{pk} of project {export.project_id} {export.title!r} ({export.status}, created {created})"
