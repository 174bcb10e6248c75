"""The one check of an export type a request names: known to the registry, and enabled for the project."""

from exports.converters.availability import enabled_format_names, label_config_of
from exports.converters.registry import FORMATS, Format, get_format

__all__ = ["ExportTypeInvalid", "check_export_type", "enabled_for"]


class ExportTypeInvalid(ValueError):
    """The export type is unknown, or the project's label config cannot produce it (the message says which)."""


def enabled_for(project) -> set[str]:
    """Names of the formats the project's label config can produce."""
    return enabled_format_names(label_config_of(project))


def check_export_type(name: str, *, enabled: set[str] | None = None) -> Format:
    """The format called `name` (case-sensitive, as Label Studio), when it exists and, given `enabled`, is one of
    those; ExportTypeInvalid otherwise."""
    fmt = get_format(name)
    if fmt is None:
        valid = ", ".join(item.name for item in FORMATS)
        # Label Studio's own words, then the names that would have worked.
        raise ExportTypeInvalid(f"{name} is not supported export format. Valid: {valid}")
    if enabled is not None and name not in enabled:
        names = ", ".join(item.name for item in FORMATS if item.name in enabled)
        raise ExportTypeInvalid(f"{name} is not supported for this project's labeling config. Enabled: {names}")
    return fmt
