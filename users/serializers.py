from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from config.api.serializers import DynamicFieldsMixin
from users.models import User


class UserSimpleSerializer(DynamicFieldsMixin, serializers.ModelSerializer):
    """The compact user shape Label Studio nests in projects and snapshots (plus `username`)."""

    avatar = serializers.SerializerMethodField()

    class Meta:
        model = User
        fields = ["id", "username", "first_name", "last_name", "email", "avatar"]

    @extend_schema_field(OpenApiTypes.URI)
    def get_avatar(self, user) -> str | None:
        if not user.avatar:
            return None
        url = user.avatar.url
        request = self.context.get("request")
        return request.build_absolute_uri(url) if request else url
