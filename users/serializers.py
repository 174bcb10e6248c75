from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from config.api.serializers import DynamicFieldsMixin


class UserSimpleSerializer(DynamicFieldsMixin, serializers.Serializer):
    """The compact user shape Label Studio nests in projects and snapshots (plus `username`).

    Declared field by field rather than as a ModelSerializer: it is rendered on every snapshot read.
    """

    id = serializers.IntegerField(read_only=True)
    username = serializers.CharField(read_only=True)
    first_name = serializers.CharField(read_only=True)
    last_name = serializers.CharField(read_only=True)
    email = serializers.EmailField(read_only=True)
    avatar = serializers.SerializerMethodField()

    @extend_schema_field(OpenApiTypes.URI)
    def get_avatar(self, user) -> str | None:
        if not user.avatar:
            return None
        url = user.avatar.url
        request = self.context.get("request")
        return request.build_absolute_uri(url) if request else url
