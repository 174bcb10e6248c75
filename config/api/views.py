"""Shared view plumbing: fields/omit/expand parsing and the JSON fallbacks for unmatched URLs."""

from functools import cached_property
from typing import TYPE_CHECKING

from rest_framework.exceptions import ValidationError

from config.api.exceptions import error_response
from config.api.serializers import check_field_paths

DYNAMIC_PARAMS = ("fields", "omit", "expand")

if TYPE_CHECKING:
    from rest_framework.generics import GenericAPIView

    _GenericView = GenericAPIView  # what the mixin below is mixed into, for the type checker
else:
    _GenericView = object


def read_list_param(params, name: str) -> list[str]:
    """All values of a comma-list parameter, in the `a,b`, repeated `a&a` and `a[]` forms."""
    values: list[str] = []
    for key in (name, f"{name}[]"):
        for raw in params.getlist(key):
            values.extend(item.strip() for item in raw.split(",") if item.strip())
    return values


class DynamicFieldsViewMixin(_GenericView):
    """View half of ?fields= ?omit= ?expand=: parse once, reject unknown names, pass plain kwargs on."""

    # Extra query parameter names that act like `fields` (Label Studio's `include` on the project list).
    fields_aliases: tuple[str, ...] = ()

    @cached_property
    def field_kwargs(self) -> dict[str, list[str]]:
        params = self.request.query_params
        kwargs = {name: read_list_param(params, name) for name in DYNAMIC_PARAMS}
        for alias in self.fields_aliases:
            kwargs["fields"] += read_list_param(params, alias)
        kwargs = {name: values for name, values in kwargs.items() if values}
        if kwargs:
            errors = check_field_paths(self.get_serializer_class()(), **kwargs)
            if errors:
                raise ValidationError(errors)
        return kwargs

    def get_serializer(self, *args, **kwargs):
        if self.request.method in ("GET", "HEAD"):  # writes answer with the full contract
            kwargs = {**self.field_kwargs, **kwargs}
        return super().get_serializer(*args, **kwargs)


def json_not_found(request, exception=None, *args, **kwargs):
    return error_response(404, "Not found.")


def json_server_error(request, *args, **kwargs):
    return error_response(500, "Internal server error")


def json_bad_request(request, exception=None, *args, **kwargs):
    return error_response(400, str(exception) if exception else "Bad request.")


def json_forbidden(request, exception=None, *args, **kwargs):
    return error_response(403, "You do not have permission to perform this action.")


def json_csrf_failure(request, reason=""):
    return error_response(403, f"CSRF Failed: {reason}")
