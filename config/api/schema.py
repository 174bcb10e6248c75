"""drf-spectacular hooks: document fields/omit/expand once for every view that honours them, name the
authentication schemes, and describe opt-in pagination by its default (a plain list)."""

import json

from django.db import connection
from drf_spectacular import openapi
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers
from rest_framework.settings import api_settings

from config.api.pagination import OptionalPagination
from config.api.serializers import DynamicFieldsMixin
from config.api.views import DynamicFieldsViewMixin

DYNAMIC_PARAMETERS = [
    OpenApiParameter(
        "fields", OpenApiTypes.STR, description="Comma-separated fields to keep; dotted paths reach nested objects."
    ),
    OpenApiParameter("omit", OpenApiTypes.STR, description="Comma-separated fields to drop; dotted paths allowed."),
    OpenApiParameter("expand", OpenApiTypes.STR, description="Comma-separated related fields to nest; `*` for all."),
]


INTEGER_FIELD_TYPES = (
    "SmallIntegerField",
    "IntegerField",
    "BigIntegerField",
    "PositiveSmallIntegerField",
    "PositiveIntegerField",
    "PositiveBigIntegerField",
)


def strip_column_range(schema: dict) -> None:
    """Drop integer bounds equal to a database column's extreme (see AutoSchema._insert_min_max)."""
    ranges = [connection.ops.integer_field_range(kind) for kind in INTEGER_FIELD_TYPES]
    if schema.get("maximum") in {high for _, high in ranges if high}:
        del schema["maximum"]
    if schema.get("minimum") in {low for low, _ in ranges if low}:
        del schema["minimum"]


class ErrorSerializer(serializers.Serializer):
    """The body of every error answer (config/api/exceptions.py), documented once and referenced by each."""

    id = serializers.UUIDField(help_text="Unique id of this error, for logs.")
    status_code = serializers.IntegerField(help_text="The HTTP status code again.")
    version = serializers.CharField(help_text="The service's version.")
    detail = serializers.CharField(help_text="What went wrong; `Validation error` for invalid input.")
    exc_info = serializers.CharField(allow_null=True, help_text="A traceback, only when the service runs with DEBUG.")
    validation_errors = serializers.DictField(
        child=serializers.JSONField(),
        required=False,
        help_text="For invalid input: messages by field (`non_field_errors` for the input as a whole).",
    )


ERROR_DESCRIPTIONS = {
    "400": "Invalid input or query parameters",
    "401": "No valid credentials",
    "404": "Not found, or outside the caller's organization",
    "416": "The requested byte range lies outside the file",
}


FORM_MEDIA_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


class AutoSchema(openapi.AutoSchema):
    def map_parsers(self):
        """JSON request bodies only, unless the view chose its own parsers (an upload that takes files).

        The service still reads form bodies where the default parsers allow them (curl -F), but a generated client
        offered JSON, form and multipart picks one of the latter and loses JSON's types and defaults.
        """
        media_types = super().map_parsers()
        if self.view.parser_classes is not api_settings.DEFAULT_PARSER_CLASSES:
            return media_types
        return [kind for kind in media_types if kind not in FORM_MEDIA_TYPES]

    def _map_basic_serializer(self, serializer, direction):
        """A response that `fields`/`omit` can shorten lists no required properties: every field is present by
        default, but a strict client must still parse `?fields=id`. Fields that `expand` adds are documented as
        optional properties too."""
        schema = super()._map_basic_serializer(serializer, direction)
        if direction == "response" and isinstance(serializer, DynamicFieldsMixin):
            schema.pop("required", None)
            for name, make in serializer.expandable().items():
                if name not in schema["properties"]:
                    field = make()
                    field.bind(name, serializer)
                    expanded = self._map_serializer_field(field, direction)
                    if "$ref" in expanded:  # a description beside a bare `$ref` would be ignored
                        expanded = {"allOf": [expanded]}
                    schema["properties"][name] = {**expanded, "description": f"Only with `expand={name}`."}
        return schema

    def get_description(self) -> str:  # type: ignore[override]
        """The operation's own words only: a docstring inherited from a mixin or base view describes the code, not
        the endpoint, so it is not shown to API users."""
        if self.view.__class__.__dict__.get("__doc__") is None:
            action = getattr(self.view, getattr(self.view, "action", self.method.lower()), None)
            own = action is not None and "__doc__" in vars(getattr(action, "__func__", action))
            return super().get_description() if own else ""
        return super().get_description()

    def get_override_parameters(self):
        parameters = super().get_override_parameters()
        if isinstance(self.view, DynamicFieldsViewMixin) and self.method == "GET":
            return parameters + DYNAMIC_PARAMETERS
        return parameters

    # Integer bounds that only restate the database column's range differ between SQLite (64-bit) and PostgreSQL
    # (32-bit); they are dropped so the schema does not depend on where it was generated. Real bounds (a
    # validator's, a positive field's 0) stay.
    def _insert_min_max(self, field, content):
        super()._insert_min_max(field, content)
        strip_column_range(content)

    def _insert_field_validators(self, field, schema):
        super()._insert_field_validators(field, schema)
        strip_column_range(schema)

    def _get_response_bodies(self, direction="response"):
        """The view's responses plus the error answers it can give, each with the error body.

        400 where the operation takes a body or query parameters, 401 where it needs credentials, 404 where the
        path names an object or the answer is paged, 416 beside a 206. Error responses a view declares without a
        body get it too.
        """
        responses = super()._get_response_bodies(direction)
        error = {"application/json": {"schema": self.resolve_serializer(ErrorSerializer, direction).ref}}
        codes = self._error_codes() + (["416"] if "206" in responses else [])
        for code in codes:
            responses.setdefault(code, {"description": ERROR_DESCRIPTIONS[code]})
        for code, response in responses.items():
            if code.isdigit() and int(code) >= 400 and not response.get("content"):
                response["content"] = error
        return responses

    def _error_codes(self) -> list[str]:
        codes = []
        takes_query = any(p.get("in") == "query" for p in self._get_parameters())
        if self.method in ("POST", "PUT", "PATCH") or takes_query:
            codes.append("400")
        if self.view.get_permissions():
            codes.append("401")
        if "{" in self.path or (self._is_list_view() and getattr(self.view, "pagination_class", None)):
            codes.append("404")
        return codes

    def _has_optional_pagination(self) -> bool:
        pagination_class = getattr(self.view, "pagination_class", None)
        return isinstance(pagination_class, type) and issubclass(pagination_class, OptionalPagination)

    def _get_paginator(self):
        # Without paging parameters such a view answers a plain list (Label Studio's snapshot list): document that.
        if self._has_optional_pagination():
            return None
        return super()._get_paginator()

    def _get_pagination_parameters(self):
        # Opt-in paging answers another shape than the documented array; the view's description tells of it.
        if self._has_optional_pagination():
            return []
        return super()._get_pagination_parameters()


def _move_ref_defaults(schema) -> None:
    """Everywhere in `schema`: a `default` beside a `$ref` (drf-spectacular wraps the reference in `allOf`) moves
    into the description. OpenAPI 3.0 ignores siblings of `$ref`, and generators refuse a model with a default."""
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        if "default" in node and ("$ref" in node or "allOf" in node):
            default = json.dumps(node.pop("default"), sort_keys=True)
            node["description"] = f"{node.get('description', '')} Default: `{default}`.".strip()
        stack.extend(node.values())


def postprocess_schema(result, generator, request, public):
    """The last step of schema generation (SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"])."""
    _move_ref_defaults(result)
    return result


class TokenScheme(OpenApiAuthenticationExtension):
    """`Authorization: Token <key>`, under Label Studio's scheme name so generated clients match."""

    target_class = "users.authentication.TokenAuthentication"
    name = "Token"
    priority = 1

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "An API token, sent as `Authorization: Token <key>`.",
        }


class BearerScheme(OpenApiAuthenticationExtension):
    """`Authorization: Bearer <access token>` from /api/token/refresh/ (personal access tokens)."""

    target_class = "users.authentication.BearerAuthentication"
    name = "Bearer"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "An access token from `POST /api/token/refresh/` with a personal access token.",
        }
