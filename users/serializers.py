from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field, extend_schema_serializer
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
    avatar = serializers.SerializerMethodField(allow_null=True)  # null when the user has no avatar

    @extend_schema_field(OpenApiTypes.URI)
    def get_avatar(self, user) -> str | None:
        if not user.avatar:
            return None
        url = user.avatar.url
        request = self.context.get("request")
        return request.build_absolute_uri(url) if request else url


@extend_schema_serializer(component_name="LSAPITokenList")
class TokenListSerializer(serializers.Serializer):
    """A personal access token as listed: unsigned (`header.payload`), so the list never reveals a usable token."""

    token = serializers.CharField(read_only=True)
    created_at = serializers.DateTimeField(read_only=True)
    expires_at = serializers.DateTimeField(read_only=True)


@extend_schema_serializer(component_name="LSAPITokenCreate")
class TokenCreateSerializer(serializers.Serializer):
    """A new personal access token, whole: the only time the signed token is shown."""

    token = serializers.CharField(read_only=True)


@extend_schema_serializer(component_name="TokenRefresh")
class TokenRefreshSerializer(serializers.Serializer):
    refresh = serializers.CharField(write_only=True)


class TokenRefreshResponseSerializer(serializers.Serializer):
    access = serializers.CharField()


@extend_schema_serializer(component_name="LSAPITokenBlacklist")
class TokenBlacklistSerializer(serializers.Serializer):
    refresh = serializers.CharField(
        write_only=True, help_text="The personal access token to revoke, whole or as the token list shows it."
    )


@extend_schema_serializer(component_name="LSAPITokenRotate")
class TokenRotateSerializer(serializers.Serializer):
    refresh = serializers.CharField()


class TokenRotateResponseSerializer(serializers.Serializer):
    refresh = serializers.CharField()
