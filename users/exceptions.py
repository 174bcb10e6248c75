"""Errors of the personal access token endpoints (rendered as the project's JSON error body)."""

from rest_framework import exceptions, status


class TokenExists(exceptions.APIException):
    """Label Studio allows one active personal access token per user; rotate or revoke it first."""

    status_code = status.HTTP_409_CONFLICT
    default_detail = "You already have an active personal access token. Revoke or rotate it before creating another."
    default_code = "token_exists"


class TokenInvalid(exceptions.AuthenticationFailed):
    default_detail = "Token is invalid, expired or revoked."
    default_code = "token_not_valid"


class TokenNotFound(exceptions.NotFound):
    default_detail = "No active personal access token of yours matches this token."
    default_code = "token_not_found"


class RefreshTokenRejected(exceptions.ValidationError):
    """A token the caller asked to rotate is not one of their live personal access tokens."""

    def __init__(self):
        super().__init__({"refresh": ["Not a valid, unrevoked personal access token of yours."]}, code="invalid")
