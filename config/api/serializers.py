"""Serializer half of ?fields= ?omit= ?expand=, shared by every serializer that renders objects."""

from datetime import UTC
from typing import TYPE_CHECKING

from rest_framework import serializers
from rest_framework.fields import empty

if TYPE_CHECKING:
    _Serializer = serializers.Serializer  # what the mixin below is mixed into, for the type checker
else:
    _Serializer = object


def _split(paths) -> tuple[set[str], dict[str, list[str]]]:
    """Top-level names, and the remainder of dotted paths grouped by their first name."""
    top: set[str] = set()
    nested: dict[str, list[str]] = {}
    for path in paths or ():
        head, _, rest = path.partition(".")
        if rest:
            nested.setdefault(head, []).append(rest)
        else:
            top.add(head)
    return top, nested


def _inner(field):
    """The serializer that renders a field's objects, for nested and many=True fields; None otherwise."""
    if isinstance(field, serializers.ListSerializer):
        field = field.child
    return field if isinstance(field, serializers.BaseSerializer) else None


class DynamicFieldsMixin(_Serializer):
    """Takes `fields`, `omit` and `expand` as plain kwargs (dotted paths allowed) and never reads the request.

    `Meta.expandable_fields` maps a name to a callable building the nested field; expanded fields are added
    first, then `fields` keeps and `omit` drops, so `fields=id&expand=project` keeps only `id`.
    """

    def __init__(self, *args, fields=None, omit=None, expand=None, **kwargs):
        self._only, self._only_nested = _split(fields)
        self._omit, self._omit_nested = _split(omit)
        self._expand, self._expand_nested = _split(expand)
        super().__init__(*args, **kwargs)

    @classmethod
    def expandable(cls) -> dict:
        return dict(getattr(getattr(cls, "Meta", None), "expandable_fields", {}))

    def get_fields(self):
        fields = super().get_fields()
        for name, make in self.expandable().items():
            if name in self._expand or "*" in self._expand or name in self._expand_nested:
                fields[name] = make()
        if self._only or self._only_nested:
            keep = self._only | set(self._only_nested)
            for name in list(fields):
                if name not in keep:
                    fields.pop(name)
        for name in self._omit:
            fields.pop(name, None)
        for name, field in fields.items():
            inner = _inner(field)
            if not isinstance(inner, DynamicFieldsMixin):
                continue
            if name in self._only_nested and name not in self._only:
                inner._only, inner._only_nested = _split(self._only_nested[name])
            if name in self._omit_nested:
                inner._omit, inner._omit_nested = _split(self._omit_nested[name])
            if name in self._expand_nested:
                inner._expand, inner._expand_nested = _split(self._expand_nested[name])
        return fields


def _known(serializer) -> dict:
    fields = dict(serializer.get_fields()) if isinstance(serializer, DynamicFieldsMixin) else dict(serializer.fields)
    if isinstance(serializer, DynamicFieldsMixin):
        for name, make in serializer.expandable().items():
            fields.setdefault(name, make())
    return fields


def check_field_paths(serializer, **params: list[str]) -> dict[str, list[str]]:
    """Unknown names per parameter, as validation errors; an empty dict when every name exists."""
    errors: dict[str, list[str]] = {}
    for param, paths in params.items():
        messages = []
        for path in paths:
            if path == "*" and param == "expand":
                continue
            problem = _check_path(serializer, path, expand=param == "expand")
            if problem:
                messages.append(problem)
        if messages:
            errors[param] = messages
    return errors


def _check_path(serializer, path: str, *, expand: bool) -> str | None:
    current = serializer
    parts = path.split(".")
    for index, part in enumerate(parts):
        known = _known(current)
        valid = sorted(current.expandable()) if expand and isinstance(current, DynamicFieldsMixin) else list(known)
        if part not in valid:
            return f"Unknown field '{'.'.join(parts[: index + 1])}'. Valid: {', '.join(valid) or '(none)'}"
        if index < len(parts) - 1:
            inner = _inner(known[part])
            if inner is None:
                return f"Field '{'.'.join(parts[: index + 1])}' has no nested fields."
            current = inner
    return None


class UtcDateTimeField(serializers.DateTimeField):
    """The contract's `YYYY-MM-DDTHH:MM:SS.ffffffZ` for any year (strftime leaves years before 1000 unpadded)."""

    def to_representation(self, value):
        if not value:
            return None
        value = self.enforce_timezone(value).astimezone(UTC)
        return f"{value.year:04d}-{value:%m-%dT%H:%M:%S}.{value.microsecond:06d}Z"


class BooleanField(serializers.BooleanField):
    """A boolean left out of a form or multipart body takes its default, as when left out of JSON. (DRF reads a
    missing form boolean as false, the way a browser leaves out an unticked checkbox.)"""

    default_empty_html = empty
