"""Writes on users and organizations."""

from django.db import transaction
from rest_framework.authtoken.models import Token

from users.models import Organization, OrganizationMember, User


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
    if username and User.objects.filter(username=username).exclude(pk=getattr(user, "pk", None)).exists():
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
