"""Values the database renders for the snapshot writer, which copies them without Django's converters: booleans
stay JSON booleans and UUIDs come in their canonical form, on SQLite and PostgreSQL alike."""

import io
import json

import pytest
from django.db import connection

from exports.snapshot import SnapshotWriter
from projects.models import Annotation, AnnotationDraft, Task
from tests.factories import fill_project, make_project

pytestmark = pytest.mark.django_db


def only_task(project, **options) -> dict:
    out = io.BytesIO()
    SnapshotWriter(project=project, **options).write(out)
    [task] = json.loads(out.getvalue())
    return task


def test_booleans_and_uuids_are_written_as_label_studio_writes_them(user):
    project = make_project(user=user)
    [task_id] = fill_project(project, user=user, count=1)
    Task.objects.filter(pk=task_id).update(allow_skip=False)
    annotation = Annotation.objects.create(
        task_id=task_id, project=project, completed_by=user, was_cancelled=True, bulk_created=None, result=[]
    )
    AnnotationDraft.objects.create(task_id=task_id, user=user, was_postponed=True, result=[])
    with connection.cursor() as cursor:  # written by other means: capitals and hyphens, as SQLite keeps them
        cursor.execute(
            "UPDATE projects_annotation SET unique_id = %s WHERE id = %s",
            ["12345678-9ABC-DEF0-1234-56789ABCDEF0", annotation.pk],
        )

    task = only_task(
        project,
        annotation_filter_options={"usual": True, "skipped": True},
        serialization_options={"drafts": {"only_id": False}},
    )
    assert task["allow_skip"] is False
    written = {item["id"]: item for item in task["annotations"]}
    assert set(written) == set(Annotation.objects.filter(task_id=task_id).values_list("pk", flat=True))
    cancelled = written.pop(annotation.pk)
    assert (cancelled["was_cancelled"], cancelled["ground_truth"], cancelled["bulk_created"]) == (True, False, None)
    assert cancelled["unique_id"] == "12345678-9abc-def0-1234-56789abcdef0"
    for imported in written.values():
        assert imported["was_cancelled"] is False
        stored = Annotation.objects.get(pk=imported["id"]).unique_id
        assert imported["unique_id"] == str(stored)
    assert [draft["was_postponed"] for draft in task["drafts"]] == [True]
