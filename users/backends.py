"""Django's model backend, with the session user's active organization kept only while they are a member."""

from django.contrib.auth.backends import ModelBackend

from users.models import OrganizationMember


class MembershipBackend(ModelBackend):
    """Session requests (admin, browsable API) load the user here; a user whose membership was removed loses
    that organization at once, as Token and Bearer requests do (`users.authentication`)."""

    def get_user(self, user_id):
        user = super().get_user(user_id)
        if user is not None and user.active_organization_id:
            member = OrganizationMember.objects.filter(user=user, organization_id=user.active_organization_id)
            if not member.exists():
                user.active_organization_id = None
        return user
