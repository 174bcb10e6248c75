"""Attach mode's callers: a request is accepted exactly when the attached Label Studio accepts it.

Label Studio itself is asked who the caller is (`GET /api/current-user/whoami` with the caller's own
`Authorization` header or `sessionid` cookie), so every rule it applies holds here unchanged, whatever its
version: signed-cookie sessions and their expiry, legacy tokens (and an organization that disabled them),
personal access tokens and their revocation, inactive users. The answer is reused for
LABEL_STUDIO_AUTH_CACHE_SECONDS per credential. The caller's active organization and membership are then read from
Label Studio's database, and the user is mirrored into this service's own tables (same id), where snapshots
record who made them. Nothing is ever written to Label Studio.
"""

import hashlib
import json
import logging
import urllib.error
import urllib.request
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.middleware.csrf import _unmask_cipher_token  # type: ignore[attr-defined]  # private: not in the stubs
from django.utils.crypto import constant_time_compare

from config.labelstudio.models import LabelStudioMembership, LabelStudioOrganization, LabelStudioUser
from users.models import Organization, OrganizationMember, User

__all__ = ["LabelStudioRefused", "LabelStudioUnavailable", "caller_credentials", "csrf_matches", "user_for"]

logger = logging.getLogger(__name__)

SESSION_COOKIE = "sessionid"  # Label Studio's names
CSRF_COOKIE = "csrftoken"
WHOAMI = "/api/current-user/whoami"


class LabelStudioRefused(Exception):
    """Label Studio does not accept these credentials (or the user is inactive)."""


class LabelStudioUnavailable(Exception):
    """Label Studio could not be asked who the caller is."""


@dataclass(frozen=True)
class Credentials:
    """What identifies the caller to Label Studio: the header to forward, and whether it is a browser session."""

    header: str
    value: str
    is_session: bool

    def cache_key(self) -> str:
        return "labelstudio-caller:" + hashlib.sha256(f"{self.header}\n{self.value}".encode()).hexdigest()


def caller_credentials(request) -> Credentials | None:
    """The request's Label Studio credentials: its Authorization header, else its `sessionid` cookie."""
    authorization = request.META.get("HTTP_AUTHORIZATION", "")
    if authorization.strip():
        return Credentials("Authorization", authorization, is_session=False)
    session = request.COOKIES.get(SESSION_COOKIE)
    if session:
        return Credentials("Cookie", f"{SESSION_COOKIE}={session}", is_session=True)
    return None


def _whoami(credentials: Credentials) -> int:
    """The id of the user Label Studio says the credentials belong to."""
    request = urllib.request.Request(
        settings.LABEL_STUDIO_URL + WHOAMI,
        headers={credentials.header: credentials.value, "Accept": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=settings.LABEL_STUDIO_AUTH_TIMEOUT) as response:  # noqa: S310
            body = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            raise LabelStudioRefused(_detail(exc)) from exc
        raise LabelStudioUnavailable(f"Label Studio answered {exc.code}") from exc
    except (OSError, ValueError) as exc:
        raise LabelStudioUnavailable(str(exc)) from exc
    user_id = body.get("id") if isinstance(body, dict) else None
    if not isinstance(user_id, int):
        raise LabelStudioRefused("Label Studio did not name a user.")
    return user_id


def _detail(error: urllib.error.HTTPError) -> str:
    try:
        detail = json.loads(error.read()).get("detail")
    except (OSError, ValueError, AttributeError):
        detail = None
    return detail if isinstance(detail, str) and detail else "Invalid credentials."


def user_for(credentials: Credentials) -> User:
    """This service's mirror of the Label Studio user the credentials belong to (raises LabelStudioRefused or
    LabelStudioUnavailable). Its `active_organization_id` is Label Studio's, or None while the user is not (or no
    longer) a member of that organization, so every scope of this service shows them nothing then."""
    key = credentials.cache_key()
    user_id = cache.get(key)
    if user_id is None:
        user_id = _mirror(_whoami(credentials))
        cache.set(key, user_id, settings.LABEL_STUDIO_AUTH_CACHE_SECONDS)
    user = User.objects.filter(pk=user_id, is_active=True).first()
    if user is None:
        raise LabelStudioRefused("User inactive or deleted.")
    return user


def _mirror(user_id: int) -> int:
    """Copy the Label Studio user (and their active organization) into this service's tables; returns the id."""
    source = LabelStudioUser.objects.filter(pk=user_id).first()
    if source is None:
        raise LabelStudioRefused("User inactive or deleted.")
    organization_id = source.active_organization_id
    if (
        organization_id is not None
        and not LabelStudioMembership.objects.filter(
            user_id=user_id, organization_id=organization_id, deleted_at__isnull=True
        ).exists()
    ):
        organization_id = None  # removed from it: sees nothing of it any more
    organization = LabelStudioOrganization.objects.filter(pk=organization_id).first() if organization_id else None
    with transaction.atomic():
        if organization is not None:
            Organization.objects.update_or_create(pk=organization.pk, defaults={"title": organization.title})
        User.objects.update_or_create(
            pk=user_id,
            defaults={
                "username": source.username,
                "email": source.email,
                "first_name": source.first_name,
                "last_name": source.last_name,
                "is_active": source.is_active,
                "active_organization_id": organization.pk if organization is not None else None,
            },
        )
        if organization is not None:
            OrganizationMember.objects.get_or_create(user_id=user_id, organization_id=organization.pk)
    return user_id


def csrf_matches(request) -> bool:
    """Whether a cookie-authenticated write carries Label Studio's CSRF token (its `csrftoken` cookie sent back in
    the X-CSRFToken header), as Label Studio itself requires of its own pages."""
    cookie = request.COOKIES.get(CSRF_COOKIE, "")
    header = request.META.get("HTTP_X_CSRFTOKEN", "")
    if not cookie or not header:
        return False

    def secret(token: str) -> str:
        # Django's own unmasking of a 64-character token.
        return _unmask_cipher_token(token) if len(token) == 64 else token

    return constant_time_compare(secret(header), secret(cookie))
