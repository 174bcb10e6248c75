"""Reads over a project's data that the API needs in one or two set-based queries."""

import json

from django.conf import settings
from django.db import connection
from django.db.models import QuerySet, Subquery
from django.http import Http404
from django.shortcuts import get_object_or_404

from projects import labelstudio
from projects.label_config import UsedTags
from projects.models import Annotation, AnnotationDraft, Project, Task
from users.models import User


def hidden_by_label_studio(*, user, project_id: int) -> bool:
    """Attach mode: whether the attached Label Studio says the project does not exist for `user` (deleted, or
    outside their organization); a project it shows is mirrored first. Always False otherwise."""
    return settings.LABEL_STUDIO_ATTACHED and not labelstudio.sync_project(user=user, project_id=project_id)


def project_or_404(*, user, project_id: int, fields: tuple[str, ...] = ()) -> Project:
    """The project of a URL among those the user sees (in attach mode, as the attached Label Studio says);
    Http404 otherwise. `fields`: load only these columns."""
    if hidden_by_label_studio(user=user, project_id=project_id):
        raise Http404("No Project matches the given query.")
    projects = Project.objects.visible_to(user)
    return get_object_or_404(projects.only(*fields) if fields else projects, pk=project_id)


def organization_project_ids(*, project_id: int) -> frozenset[int]:
    """Ids of every project of `project_id`'s organization (its own included), where projects live: the attached
    Label Studio in attach mode (projects never exported are not mirrored here), this service otherwise. One query,
    so a conversion finds them once and checks each file it packs against them."""
    if settings.LABEL_STUDIO_ATTACHED:
        return labelstudio.organization_project_ids(project_id=project_id)
    organization = Project.objects.filter(pk=project_id).values("organization_id")[:1]
    return frozenset(Project.objects.filter(organization_id=Subquery(organization)).values_list("pk", flat=True))


def project_annotators(*, project: Project) -> QuerySet[User]:
    """Users who annotated (submitted or skipped) at least one task of the project, by id; one query."""
    annotated = Annotation.objects.filter(project=project, completed_by__isnull=False).values("completed_by")
    return User.objects.filter(pk__in=annotated).order_by("id")


# One row per distinct (from_name, to_name, type, labels) of the result items: the database unpacks the JSON and
# groups, so only a few rows (one per label combination) come back whatever the number of annotations.
_POSTGRES_ITEMS = """
SELECT item ->> 'from_name', item ->> 'to_name', item ->> 'type',
       CASE WHEN jsonb_typeof(item -> 'value' -> {key}) = 'array' THEN (item -> 'value' -> {key})::text END,
       COUNT(*)
FROM {source}
CROSS JOIN LATERAL jsonb_array_elements(
    CASE WHEN jsonb_typeof(src.result) = 'array' THEN src.result ELSE '[]'::jsonb END
) AS item
WHERE {where} AND jsonb_typeof(item) = 'object'
GROUP BY 1, 2, 3, 4
"""
_POSTGRES_KEY = "(CASE WHEN item ->> 'type' = 'videorectangle' THEN 'labels' ELSE item ->> 'type' END)"

_SQLITE_ITEMS = """
SELECT json_extract(item.value, '$.from_name'), json_extract(item.value, '$.to_name'),
       json_extract(item.value, '$.type'), labels.value, COUNT(*)
FROM {source}
JOIN json_each(CASE WHEN json_type(src.result) = 'array' THEN src.result ELSE '[]' END) AS item
LEFT JOIN json_each(CASE WHEN item.type = 'object' THEN item.value ELSE '{{}}' END, '$.value') AS labels
    ON labels.type = 'array' AND labels.key = {key}
WHERE {where} AND item.type = 'object'
GROUP BY 1, 2, 3, 4
"""
_SQLITE_KEY = (
    "(CASE WHEN json_extract(item.value, '$.type') = 'videorectangle' THEN 'labels' "
    "ELSE json_extract(item.value, '$.type') END)"
)


def _result_items_sql(*, drafts: bool) -> str:
    quote = connection.ops.quote_name
    if drafts:  # drafts carry no project of their own: reach it through their task
        source = (
            f"{quote(AnnotationDraft._meta.db_table)} AS src "
            f"JOIN {quote(Task._meta.db_table)} AS task ON task.{quote('id')} = src.{quote('task_id')}"
        )
        where = f"task.{quote('project_id')} = %s"
    else:
        source = f"{quote(Annotation._meta.db_table)} AS src"
        where = f"src.{quote('project_id')} = %s"
    if connection.vendor == "postgresql":
        return _POSTGRES_ITEMS.format(source=source, where=where, key=_POSTGRES_KEY)
    return _SQLITE_ITEMS.format(source=source, where=where, key=_SQLITE_KEY)


def project_used_tags(*, project: Project) -> UsedTags:
    """The controls, targets and label values the project's annotations and drafts use; two queries."""
    used = UsedTags()
    with connection.cursor() as cursor:
        for drafts in (False, True):
            cursor.execute(_result_items_sql(drafts=drafts), [project.pk])
            for from_name, to_name, kind, labels, count in cursor.fetchall():
                values = json.loads(labels) if labels is not None else None
                used.add(from_name=from_name, to_name=to_name, kind=kind, values=values, count=count, draft=drafts)
    return used
