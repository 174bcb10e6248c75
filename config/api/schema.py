"""drf-spectacular hooks: document fields/omit/expand once, for every view that honours them."""

from drf_spectacular import openapi
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter

from config.api.views import DynamicFieldsViewMixin

DYNAMIC_PARAMETERS = [
    OpenApiParameter(
        "fields", OpenApiTypes.STR, description="Comma-separated fields to keep; dotted paths reach nested objects."
    ),
    OpenApiParameter("omit", OpenApiTypes.STR, description="Comma-separated fields to drop; dotted paths allowed."),
    OpenApiParameter("expand", OpenApiTypes.STR, description="Comma-separated related fields to nest; `*` for all."),
]


class AutoSchema(openapi.AutoSchema):
    def get_override_parameters(self):
        parameters = super().get_override_parameters()
        if isinstance(self.view, DynamicFieldsViewMixin) and self.method == "GET":
            return parameters + DYNAMIC_PARAMETERS
        return parameters
