"""Users, organizations and memberships: every request acts inside the user's active organization."""

from django.contrib.auth.models import AbstractUser
from django.db import models


class Organization(models.Model):
    """A tenant: projects belong to one, and nothing crosses between them."""

    title = models.CharField(max_length=1000)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        "users.User", null=True, blank=True, on_delete=models.SET_NULL, related_name="created_organizations"
    )

    def __str__(self) -> str:
        return self.title


class User(AbstractUser):
    """A person with a unique email, an avatar and the organization they currently act in."""

    email = models.EmailField(unique=True)
    avatar = models.FileField(upload_to="avatars/", null=True, blank=True)
    active_organization = models.ForeignKey(
        Organization, null=True, blank=True, on_delete=models.SET_NULL, related_name="active_users"
    )
    organizations = models.ManyToManyField(Organization, through="OrganizationMember", related_name="users")

    def __str__(self) -> str:
        return self.email or self.username


class OrganizationMember(models.Model):
    """One user's membership of one organization."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="members")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "organization"], name="unique_membership")]

    def __str__(self) -> str:
        return f"{self.user} in {self.organization}"
