"""Start-up check of attach mode: every Label Studio table and column the service reads must be there."""

from typing import Any

from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.db import connections

from config.labelstudio.models import READ_MODELS
from config.labelstudio.router import DATABASE

__all__ = ["missing_columns", "verify_tables"]


def missing_columns() -> list[str]:
    """`table.column` for each column the service reads that Label Studio's database lacks (a whole missing
    table as `table`)."""
    connection = connections[DATABASE]
    with connection.cursor() as cursor:
        tables = set(connection.introspection.table_names(cursor))
        missing = []
        for model in READ_MODELS:
            table = model._meta.db_table
            if table not in tables:
                missing.append(table)
                continue
            present = {column.name for column in connection.introspection.get_table_description(cursor, table)}
            missing += [
                f"{table}.{field.column}" for field in model._meta.concrete_fields if field.column not in present
            ]
    return missing


def verify_tables() -> None:
    """Refuse to start (ImproperlyConfigured, naming what is missing) unless Label Studio's tables are usable."""
    try:
        missing = missing_columns()
    except Exception as exc:
        raise ImproperlyConfigured(f"Attach mode: cannot read Label Studio's database: {exc}") from exc
    if missing:
        raise ImproperlyConfigured(
            "Attach mode: Label Studio's database lacks what this service reads (is it Label Studio 1.23.x, "
            f"migrated?): {', '.join(missing)}"
        )


@checks.register(checks.Tags.database)
def check_label_studio_tables(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """`manage.py check --database labelstudio` reports the same problems."""
    if DATABASE not in (kwargs.get("databases") or ()):
        return []
    try:
        verify_tables()
    except ImproperlyConfigured as exc:
        return [checks.Error(str(exc), id="labelstudio.E001")]
    return []
