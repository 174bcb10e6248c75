"""Personal access token endpoints, at Label Studio's paths (/api/token/...)."""

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response

from users.authentication import BEARER_CHALLENGE
from users.exceptions import TokenNotFound
from users.serializers import (
    TokenBlacklistSerializer,
    TokenCreateSerializer,
    TokenListSerializer,
    TokenRefreshResponseSerializer,
    TokenRefreshSerializer,
    TokenRotateResponseSerializer,
    TokenRotateSerializer,
)
from users.services import access_token_issue, personal_token_create, personal_token_revoke, personal_token_rotate
from users.tokens import active_tokens

TAGS = ["Tokens"]


class TokenListAPI(GenericAPIView):
    """The caller's personal access tokens: list the active ones, or create one."""

    serializer_class = TokenListSerializer
    pagination_class = None

    @extend_schema(operation_id="api_token_list", tags=TAGS, responses={200: TokenListSerializer(many=True)})
    def get(self, request):
        return Response(TokenListSerializer(active_tokens(request.user), many=True).data)

    @extend_schema(
        operation_id="api_token_create",
        tags=TAGS,
        request=None,
        responses={201: TokenCreateSerializer, 409: OpenApiResponse(description="An active token exists already")},
    )
    def post(self, request):
        token = personal_token_create(user=request.user)
        return Response(TokenCreateSerializer({"token": token}).data, status=status.HTTP_201_CREATED)


class TokenRefreshAPI(GenericAPIView):
    """Exchange a personal access token for an access token. Needs no other credentials: the token is one."""

    authentication_classes = []
    permission_classes = []
    serializer_class = TokenRefreshSerializer

    def get_authenticate_header(self, request):
        return BEARER_CHALLENGE  # keeps a rejected token a 401 (DRF turns a 401 without a challenge into 403)

    @extend_schema(
        operation_id="api_token_refresh_create",
        tags=TAGS,
        auth=[],
        responses={200: TokenRefreshResponseSerializer, 401: OpenApiResponse(description="Token invalid")},
    )
    def post(self, request):
        serializer = TokenRefreshSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        access = access_token_issue(refresh=serializer.validated_data["refresh"])
        return Response(TokenRefreshResponseSerializer({"access": access}).data)


class TokenBlacklistAPI(GenericAPIView):
    """Revoke one of the caller's personal access tokens; the access tokens issued from it stop working too."""

    serializer_class = TokenBlacklistSerializer

    @extend_schema(
        operation_id="api_token_blacklist_create",
        tags=TAGS,
        responses={204: None, 404: OpenApiResponse(description="No active token of the caller matches")},
    )
    def post(self, request):
        serializer = TokenBlacklistSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        if not personal_token_revoke(user=request.user, token=serializer.validated_data["refresh"]):
            raise TokenNotFound()
        return Response(status=status.HTTP_204_NO_CONTENT)


class TokenRotateAPI(GenericAPIView):
    """Revoke one of the caller's personal access tokens and issue its replacement."""

    serializer_class = TokenRotateSerializer

    @extend_schema(
        operation_id="api_token_rotate_create",
        tags=TAGS,
        responses={
            200: TokenRotateResponseSerializer,
            400: OpenApiResponse(description="Not a live personal access token of the caller"),
        },
    )
    def post(self, request):
        serializer = TokenRotateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        token = personal_token_rotate(user=request.user, refresh=serializer.validated_data["refresh"])
        return Response(TokenRotateResponseSerializer({"refresh": token}).data)
