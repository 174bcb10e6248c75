"""URL helpers: Label Studio's integer ids, and each path answering in both slash forms without a redirect."""

from django.urls import path, register_converter


class IdConverter:
    """A non-negative id that fits the database's 64-bit integer; anything else is an unmatched URL (JSON 404)."""

    regex = "[0-9]{1,18}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int) -> str:
        return str(value)


register_converter(IdConverter, "id")


def both_slashes(route: str, view, name: str) -> list:
    """The route as Label Studio spells it (named) plus its other slash form (unnamed)."""
    other = route[:-1] if route.endswith("/") else f"{route}/"
    return [path(route, view, name=name), path(other, view)]
