"""Writes on users, organizations and personal access tokens."""

from django.db import transaction
from rest_framework.authtoken.models import Token
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.settings import api_settings as jwt_settings
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.utils import datetime_from_epoch

from users.exceptions import RefreshTokenRejected, TokenExists, TokenInvalid
from users.models import Organization, OrganizationMember, User
from users.tokens import PersonalAccessToken, active_tokens, token_id, token_user_id, unsigned


class UserConflict(ValueError):
    """The requested username or token belongs to another user."""


def _free_username(base: str) -> str:
    candidate, suffix = base, 1
    while User.objects.filter(username=candidate).exists():
        suffix += 1
        candidate = f"{base}{suffix}"
    return candidate


@transaction.atomic
def user_create_or_update(
    *, email: str, password: str, username: str = "", organization: str = "", token: str = ""
) -> tuple[User, Token]:
    """Create or update a user, join (or create) the named organization, make it active, and set the token.

    The username defaults to the email's local part (made unique) for a new user and is left as it is
    for an existing one; a username or token that another user holds is a conflict.
    """
    user = User.objects.filter(email__iexact=email).first()
    others = User.objects.filter(username=username)
    if user is not None:
        others = others.exclude(pk=user.pk)
    if username and others.exists():
        raise UserConflict(f"Username {username!r} belongs to another user.")
    if token and Token.objects.filter(key=token).exclude(user=user).exists():
        raise UserConflict("That token key belongs to another user.")
    if user is None:
        user = User(email=email, username=username or _free_username(email.split("@", 1)[0]))
    elif username:
        user.username = username
    if not user.pk or not user.check_password(password):
        user.set_password(password)
    user.save()

    org_title = organization or f"{user.username}'s organization"
    org = Organization.objects.filter(title=org_title).order_by("pk").first()
    if org is None:
        org = Organization.objects.create(title=org_title, created_by=user)
    OrganizationMember.objects.get_or_create(user=user, organization=org)
    if user.active_organization_id != org.pk:
        user.active_organization = org
        user.save(update_fields=["active_organization"])

    current = Token.objects.filter(user=user).first()
    if token and (current is None or current.key != token):
        Token.objects.filter(user=user).delete()
        current = Token.objects.create(user=user, key=token)
    elif current is None:
        current = Token.objects.create(user=user)
    return user, current


def _lock_tokens_of(user: User) -> None:
    """Lock the user's row until the transaction ends, so that concurrent creates and rotations of their personal
    access tokens run one after the other and never leave two active tokens."""
    list(User.objects.select_for_update().filter(pk=user.pk).values_list("pk"))


def _personal_token_issue(user: User) -> str:
    token = PersonalAccessToken()
    token[jwt_settings.USER_ID_CLAIM] = str(user.pk)
    raw = str(token)
    OutstandingToken.objects.create(
        user=user,
        jti=token[jwt_settings.JTI_CLAIM],
        token=unsigned(raw),
        created_at=token.current_time,
        expires_at=datetime_from_epoch(token["exp"]),
    )
    return raw


@transaction.atomic
def personal_token_create(*, user: User) -> str:
    """Issue a personal access token (a signed JWT refresh token) for `user` and return it.

    As in Label Studio a user has at most one active token: TokenExists while one is neither expired nor revoked.
    """
    _lock_tokens_of(user)
    if active_tokens(user).exists():
        raise TokenExists()
    return _personal_token_issue(user)


def access_token_issue(*, refresh: str) -> str:
    """Exchange a personal access token for a short-lived access token.

    TokenInvalid unless the token is correctly signed, unexpired, a refresh token, recorded, not revoked, and its
    user still exists and is active.
    """
    try:
        token = PersonalAccessToken(refresh)
        user_id = token_user_id(token)
    except (TokenError, ValueError) as exc:
        raise TokenInvalid() from exc
    live = OutstandingToken.objects.filter(
        jti=token[jwt_settings.JTI_CLAIM], user_id=user_id, user__is_active=True, blacklistedtoken__isnull=True
    ).exists()
    if not live:
        raise TokenInvalid()
    return str(token.access_token)


def personal_token_revoke(*, user: User, token: str) -> bool:
    """Revoke one of `user`'s active personal access tokens, given whole or unsigned (`header.payload`, as the
    token list shows it). False when no active token of theirs matches.

    The signature is not needed: the caller is authenticated, and only their own tokens are looked at.
    """
    jti = token_id(token)
    outstanding = active_tokens(user).filter(jti=jti).first() if jti else None
    if outstanding is None:
        return False
    BlacklistedToken.objects.get_or_create(token=outstanding)
    return True


@transaction.atomic
def personal_token_rotate(*, user: User, refresh: str) -> str:
    """Revoke `user`'s personal access token `refresh` (whole and correctly signed) and return a new one."""
    try:
        PersonalAccessToken(refresh)
    except TokenError as exc:
        raise RefreshTokenRejected() from exc
    _lock_tokens_of(user)
    if not personal_token_revoke(user=user, token=refresh):
        raise RefreshTokenRejected()
    return _personal_token_issue(user)
