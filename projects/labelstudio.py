"""Attach mode's projects: the attached Label Studio decides which projects exist and who sees them.

Before an export endpoint touches a project, its Label Studio row is read: a project Label Studio deleted (or
soft-deleted), or one outside the caller's active organization, does not exist for the caller. A live one is
mirrored into this service's own table (same id, title, description, label config and organization), which
snapshots refer to. Label Studio's tasks are never copied: snapshots read them where they are.
"""

from django.db import transaction
from django.db.models import Subquery

from config.labelstudio.models import LabelStudioProject
from projects.models import Project

__all__ = ["organization_project_ids", "sync_project"]


def sync_project(*, user, project_id: int) -> bool:
    """Mirror the Label Studio project when `user` sees it there; False (nothing done) when they do not."""
    organization_id = getattr(user, "active_organization_id", None)
    if not organization_id:
        return False
    source = (
        LabelStudioProject.objects.filter(pk=project_id, organization_id=organization_id, deleted_at__isnull=True)
        .only("id", "title", "description", "label_config", "organization_id", "created_at")
        .first()
    )
    if source is None:
        return False
    values = {
        "organization_id": source.organization_id,
        "title": (source.title or "")[: Project._meta.get_field("title").max_length],
        "description": source.description or "",
        "label_config": source.label_config or "",
    }
    mirrored = Project.objects.filter(pk=project_id).values(*values).first()
    if mirrored != values:
        with transaction.atomic():
            Project.objects.update_or_create(pk=project_id, defaults=values)
            Project.objects.filter(pk=project_id).update(created_at=source.created_at)
    return True


def organization_project_ids(*, project_id: int) -> frozenset[int]:
    """Ids of every Label Studio project of `project_id`'s organization (its own included); one query.

    Deleted projects count: their files still belong to the organization. Empty when the project is not there.
    """
    organization = LabelStudioProject.objects.filter(pk=project_id).values("organization_id")[:1]
    ids = LabelStudioProject.objects.filter(organization_id=Subquery(organization)).values_list("pk", flat=True)
    return frozenset(ids)
