"""The webhook resource: Label Studio's webhook body (label_studio/webhooks/serializers.py) plus a write-only
`secret` and the read-only result of the latest delivery."""

import re

from django.http import Http404
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from config.api.serializers import DynamicFieldsMixin
from exports.models import Webhook, WebhookAction
from exports.webhooks import SIGNATURE_HEADER, target_refusal
from projects.models import Project
from projects.selectors import project_or_404

MAX_HEADERS = 10  # as Label Studio's HEADERS_SCHEMA
HEADER_NAME = re.compile(r"[A-Za-z0-9_-]+")
# Headers the delivery sets itself (or that would break the request): a webhook cannot set them.
RESERVED_HEADERS = frozenset(
    name.lower() for name in ("Content-Type", "Content-Length", "Host", "Transfer-Encoding", "Connection", "User-Agent")
) | {SIGNATURE_HEADER.lower()}
MAX_PROJECT_ID = 10**18 - 1  # the largest id a path takes (config/api/urls.py): beyond it the database refuses


class OrganizationProjectField(serializers.PrimaryKeyRelatedField):
    """A project id of the caller's organization (mirrored first in attach mode); any other id, missing or another
    organization's, gets the same `does not exist` answer."""

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int | str):
            self.fail("incorrect_type", data_type=type(data).__name__)
        try:
            pk = int(data)
        except ValueError:
            self.fail("incorrect_type", data_type=type(data).__name__)
        if not 0 < pk <= MAX_PROJECT_ID:
            self.fail("does_not_exist", pk_value=data)
        try:
            return project_or_404(user=self.context["request"].user, project_id=pk, fields=("id", "organization_id"))
        except Http404:
            self.fail("does_not_exist", pk_value=data)


@extend_schema_field({"type": "object", "additionalProperties": {"type": "string"}, "maxProperties": MAX_HEADERS})
class HeadersField(serializers.DictField):
    """Extra request headers: a JSON object of up to ten names (letters, digits, `-`, `_`) to string values."""

    child = serializers.CharField(allow_blank=True, trim_whitespace=False)

    def to_internal_value(self, data):
        headers = super().to_internal_value(data)
        if len(headers) > MAX_HEADERS:
            raise serializers.ValidationError(f"At most {MAX_HEADERS} headers.")
        for name, value in headers.items():
            if not HEADER_NAME.fullmatch(name):
                raise serializers.ValidationError(f"Header name {name!r} may hold only letters, digits, '-' and '_'.")
            if name.lower() in RESERVED_HEADERS:
                raise serializers.ValidationError(f"Header {name} is set by the delivery itself.")
            if any(ord(char) < 0x20 or ord(char) == 0x7F for char in value) or not value.isascii():
                raise serializers.ValidationError(f"Header {name}: the value must be printable ASCII.")
        return headers


class WebhookSerializer(DynamicFieldsMixin, serializers.ModelSerializer):
    """A webhook as Label Studio shows it, plus `last_delivery_*` (this service's); `secret` is never shown."""

    project = OrganizationProjectField(
        queryset=Project.objects.all(),
        required=False,
        allow_null=True,
        help_text="A project of the organization: the webhook then fires for that project's exports only.",
    )
    headers = HeadersField(required=False, help_text="Extra headers sent with every delivery.")
    actions = serializers.ListField(
        child=serializers.ChoiceField(WebhookAction.choices),
        required=False,
        help_text="The actions it fires for when `send_for_all_actions` is false.",
    )
    secret = serializers.CharField(
        write_only=True,
        required=False,
        allow_blank=True,
        trim_whitespace=False,
        max_length=1024,
        help_text=(
            "Key of the `X-Webhook-Signature: sha256=<hex HMAC-SHA256 of the body>` header of each delivery; never "
            "shown. Empty or unset: deliveries are not signed."
        ),
    )

    class Meta:
        model = Webhook
        fields = [
            "id",
            "organization",
            "project",
            "url",
            "send_payload",
            "send_for_all_actions",
            "headers",
            "is_active",
            "actions",
            "created_at",
            "updated_at",
            "secret",
            "last_delivery_status",
            "last_delivery_error",
            "last_delivery_at",
        ]
        read_only_fields = [
            "id",
            "organization",
            "created_at",
            "updated_at",
            "last_delivery_status",
            "last_delivery_error",
            "last_delivery_at",
        ]
        extra_kwargs = {
            "url": {"help_text": "Where deliveries are POSTed (http or https)."},
            "send_payload": {"help_text": "False: deliveries carry only the action and the ids."},
            "send_for_all_actions": {"help_text": "True: fires for every action; false: only for `actions`."},
            "is_active": {"help_text": "False: the webhook is not sent."},
            "last_delivery_status": {
                "help_text": "HTTP status of the latest delivery attempt; null when it got no answer or none was made."
            },
            "last_delivery_error": {"help_text": "Why the latest delivery attempt failed; null when it succeeded."},
            "last_delivery_at": {"help_text": "When the latest delivery attempt ended."},
        }

    def validate_url(self, value: str) -> str:
        refusal = target_refusal(value)
        if refusal:
            raise serializers.ValidationError(f"This URL cannot receive webhooks: {refusal}.")
        return value

    def validate_actions(self, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))


class WebhookSerializerForUpdate(WebhookSerializer):
    """A webhook's update: as Label Studio, its project is fixed once created (a `project` sent is ignored)."""

    project = OrganizationProjectField(
        read_only=True, allow_null=True, help_text="The project it fires for; null: every project of the organization."
    )
