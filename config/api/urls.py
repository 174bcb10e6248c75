"""URL helpers: Label Studio's integer ids (64-bit at most)."""

from django.urls import register_converter


class IdConverter:
    """A non-negative id that fits the database's 64-bit integer; anything else is an unmatched URL (JSON 404)."""

    regex = "[0-9]{1,18}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int) -> str:
        return str(value)


register_converter(IdConverter, "id")
