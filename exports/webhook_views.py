"""The webhook endpoints, Label Studio's (label_studio/webhooks/api.py): list and create at /api/webhooks/, read,
update and delete at /api/webhooks/{id}/, the actions at /api/webhooks/info/. Only the caller's active organization's
webhooks exist for them; reads go through `Webhook.objects.visible_to`, writes through `exports.webhooks`."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import generics, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from config.api.views import DynamicFieldsViewMixin
from exports.models import Webhook, WebhookAction
from exports.webhook_serializers import WebhookSerializer, WebhookSerializerForUpdate
from exports.webhooks import webhook_create, webhook_update

PROJECT_FILTER = OpenApiParameter(
    "project",
    OpenApiTypes.STR,
    description="A project id: only that project's webhooks; `isnull`: only those of the whole organization.",
)

ACTION_INFO = {
    WebhookAction.EXPORT_COMPLETED: ("Snapshot completed", "A snapshot's file is written.", "export"),
    WebhookAction.EXPORT_FAILED: ("Snapshot failed", "A snapshot could not be written.", "export"),
    WebhookAction.CONVERSION_COMPLETED: (
        "Conversion completed",
        "A snapshot is converted to another format.",
        "converted_format",
    ),
    WebhookAction.CONVERSION_FAILED: ("Conversion failed", "A snapshot's conversion failed.", "converted_format"),
}


@extend_schema_view(
    get=extend_schema(
        operation_id="api_webhooks_list",
        description="The webhooks of the caller's organization, oldest first.",
        parameters=[PROJECT_FILTER],
    ),
)
class WebhookListAPI(DynamicFieldsViewMixin, generics.ListAPIView):
    serializer_class = WebhookSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Webhook.objects.none()
        webhooks = Webhook.objects.visible_to(self.request.user).order_by("id")
        project = self.request.query_params.get("project", "")
        if not project:
            return webhooks
        if project == "isnull":
            return webhooks.filter(project__isnull=True)
        if not (project.isascii() and project.isdigit() and len(project) <= 18):
            raise ValidationError({"project": ["Expected a project id or `isnull`."]})
        return webhooks.filter(project_id=int(project))

    @extend_schema(
        operation_id="api_webhooks_create",
        description=(
            "Create a webhook of the caller's organization, or of one of its projects. Its URL must resolve to "
            "public addresses unless its host is listed in the service's WEBHOOK_HOSTS."
        ),
        request=WebhookSerializer,
        responses={201: WebhookSerializer},
    )
    def post(self, request):
        serializer = WebhookSerializer(data=request.data, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        organization_id = getattr(request.user, "active_organization_id", None)
        if not organization_id:
            raise ValidationError({"non_field_errors": ["You have no active organization."]})
        webhook = webhook_create(organization_id=organization_id, **serializer.validated_data)
        data = WebhookSerializer(webhook, context=self.get_serializer_context()).data
        return Response(data, status=status.HTTP_201_CREATED)


@extend_schema_view(
    get=extend_schema(operation_id="api_webhooks_retrieve", description="One webhook of the caller's organization."),
    put=extend_schema(
        operation_id="api_webhooks_update",
        description="Replace a webhook's settings; its project stays (a `project` sent is ignored).",
    ),
    patch=extend_schema(
        operation_id="api_webhooks_partial_update",
        description="Change some of a webhook's settings; its project stays (a `project` sent is ignored).",
    ),
    delete=extend_schema(operation_id="api_webhooks_destroy", description="Delete a webhook."),
)
class WebhookAPI(DynamicFieldsViewMixin, generics.RetrieveUpdateDestroyAPIView):
    def get_serializer_class(self):
        if self.request.method in ("PUT", "PATCH"):
            return WebhookSerializerForUpdate
        return WebhookSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Webhook.objects.none()
        return Webhook.objects.visible_to(self.request.user)

    def perform_update(self, serializer):
        serializer.instance = webhook_update(webhook=serializer.instance, **serializer.validated_data)


class WebhookInfoAPI(APIView):
    @extend_schema(
        operation_id="api_webhooks_info_retrieve",
        description="The actions a webhook can take, by name (Label Studio's shape; none is organization-only).",
        parameters=[
            OpenApiParameter(
                "organization-only",
                OpenApiTypes.BOOL,
                description="true: only the actions for organization webhooks only; false: the others.",
            )
        ],
        responses={
            200: OpenApiResponse(
                description="Each action's name, description, payload key and whether it is organization-only.",
                response={
                    "type": "object",
                    "properties": {
                        action: {
                            "type": "object",
                            "properties": {
                                "name": {"type": "string"},
                                "description": {"type": "string"},
                                "key": {"type": "string"},
                                "organization-only": {"type": "boolean"},
                            },
                            "required": ["name", "description", "key", "organization-only"],
                        }
                        for action in WebhookAction.values
                    },
                },
            )
        },
    )
    def get(self, request):
        info = {
            action: {"name": name, "description": description, "key": key, "organization-only": False}
            for action, (name, description, key) in ACTION_INFO.items()
        }
        wanted = request.query_params.get("organization-only")
        if wanted is not None:
            info = {action: item for action, item in info.items() if item["organization-only"] == (wanted == "true")}
        return Response(info)
