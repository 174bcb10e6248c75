"""Writes on users and organizations."""

from django.db import transaction
from rest_framework.authtoken.models import Token

from users.models import Organization, OrganizationMember, User


@transaction.atomic
def user_create_or_update(
    *, email: str, password: str, username: str = "", organization: str = "", token: str = ""
) -> tuple[User, Token]:
    """Create or update a user, join (or create) the named organization, make it active, and set the token."""
    username = username or email.split("@", 1)[0]
    user = User.objects.filter(email__iexact=email).first()
    if user is None:
        user = User(email=email, username=username)
    else:
        user.username = username
    if not user.pk or not user.check_password(password):
        user.set_password(password)
    user.save()

    org_title = organization or f"{username}'s organization"
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
