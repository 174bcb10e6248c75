from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin

from users.models import Organization, OrganizationMember, User


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    fieldsets = (*(BaseUserAdmin.fieldsets or ()), ("Organization", {"fields": ("avatar", "active_organization")}))


admin.site.register(Organization)
admin.site.register(OrganizationMember)
