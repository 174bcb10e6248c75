import re
from pathlib import Path

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from exports import jobs
from exports.models import ConvertedFormat, Export, Status
from tests.exports.helpers import download_url
from tests.factories import fill_project, make_project, make_user

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:exports_export_changelist"
CONVERSIONS = "admin:exports_convertedformat_changelist"


@pytest.fixture
def project(user):
    project = make_project(user=user)
    fill_project(project, user=user, count=3)
    return project


@pytest.fixture
def admin_client(org):
    operator = make_user(email="root@example.com", organization=org, is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(operator)
    return client


def stored_files(settings) -> set[Path]:
    root = Path(settings.DATA_DIR) / "exports"
    return {p for p in root.rglob("*") if p.is_file()} if root.exists() else set()


def completed(project, user, *, convert_to: str = "") -> Export:
    export = Export.objects.create(project=project, created_by=user, title="nightly")
    jobs.run_export(export.pk)
    if convert_to:
        jobs.run_conversion(ConvertedFormat.objects.create(export=export, export_type=convert_to).pk)
    export.refresh_from_db()
    assert export.status == Status.COMPLETED
    return export


def failed(project, user, reason: str = "RuntimeError: disk on fire", **options) -> Export:
    export = Export.objects.create(project=project, created_by=user, title="broken", **options)
    assert Export.objects.transition(export.pk, Status.FAILED, reason=reason)
    return export


def failed_conversion(export: Export, export_type: str = "CSV") -> ConvertedFormat:
    converted = ConvertedFormat.objects.create(export=export, export_type=export_type)
    assert ConvertedFormat.objects.transition(converted.pk, Status.FAILED, traceback="ValueError: bad label")
    return converted


def test_changelist_shows_status_progress_size_and_reason(admin_client, project, user):
    good = completed(project, user)
    bad = failed(project, user)
    response = admin_client.get(reverse(CHANGELIST))
    assert response.status_code == 200
    page = response.content.decode()
    assert "RuntimeError: disk on fire" in page
    assert "completed" in page
    assert "failed" in page
    assert "3/3" in page  # counters done/total
    assert re.search(r'<td class="field-size">\d+(\.\d)? K?B</td>', page)  # the stored file's size
    assert download_url(project, good.pk) in page
    assert download_url(project, bad.pk) not in page  # no link to a file that does not exist


def test_changelist_query_count_does_not_grow_with_rows(admin_client, project, user):
    completed(project, user)
    failed(project, user)
    counts = []
    for _ in range(2):
        with CaptureQueriesContext(connection) as captured:
            assert admin_client.get(reverse(CHANGELIST)).status_code == 200
        counts.append(len(captured))
        completed(project, user, convert_to="CSV")
        failed(project, user)
    assert counts[0] == counts[1]


def test_size_is_a_dash_when_the_file_is_missing(admin_client, project, user, settings):
    export = completed(project, user)
    for path in stored_files(settings):
        path.unlink()
    response = admin_client.get(reverse(CHANGELIST))
    assert response.status_code == 200
    assert '<td class="field-size">-</td>' in response.content.decode()
    assert Export.objects.get(pk=export.pk).file  # the row still names it


def test_change_page_is_read_only_and_lists_conversions(admin_client, project, user):
    export = completed(project, user, convert_to="CSV")
    failed_conversion(export, "JSON_MIN")
    response = admin_client.get(reverse("admin:exports_export_change", args=[export.pk]))
    assert response.status_code == 200
    page = response.content.decode()
    assert "ValueError: bad label" in page  # the inline shows a conversion's failure
    assert download_url(project, export.pk) + "?exportType=CSV" in page
    assert 'name="_save"' not in page  # nothing to edit
    assert reverse("admin:exports_export_delete", args=[export.pk]) in page


def test_search_by_project_id_and_title(admin_client, project, user):
    completed(project, user)
    other = make_project(user=user, title="Other")
    failed(other, user)
    by_project = admin_client.get(reverse(CHANGELIST), {"q": str(other.pk)})
    assert by_project.context["cl"].result_count == 1
    by_title = admin_client.get(reverse(CHANGELIST), {"q": "nightly"})
    assert by_title.context["cl"].result_count == 1
    not_a_number = admin_client.get(reverse(CHANGELIST), {"q": "no-such-thing"})
    assert not_a_number.status_code == 200
    assert not_a_number.context["cl"].result_count == 0


def test_filter_by_status(admin_client, project, user):
    completed(project, user)
    failed(project, user)
    response = admin_client.get(reverse(CHANGELIST), {"status__exact": "failed"})
    assert response.context["cl"].result_count == 1


def test_conversion_pages_render(admin_client, project, user):
    export = completed(project, user, convert_to="CSV")
    converted = failed_conversion(export, "JSON_MIN")
    response = admin_client.get(reverse(CONVERSIONS))
    assert response.status_code == 200
    page = response.content.decode()
    assert "ValueError: bad label" in page
    assert "JSON_MIN" in page
    assert download_url(project, export.pk) + "?exportType=CSV" in page
    change = admin_client.get(reverse("admin:exports_convertedformat_change", args=[converted.pk]))
    assert change.status_code == 200
    assert "ValueError: bad label" in change.content.decode()


def test_retry_failed_snapshots_creates_new_ones_with_the_same_options(
    admin_client, project, user, django_capture_on_commit_callbacks
):
    options = {
        "task_filter_options": {"only_with_annotations": True},
        "serialization_options": {"drafts": {"only_id": True}},
    }
    bad = failed(project, user, **options)
    good = completed(project, user)
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            reverse(CHANGELIST), {"action": "retry_failed", ACTION_CHECKBOX_NAME: [bad.pk, good.pk]}, follow=True
        )
    assert response.status_code == 200
    retried = Export.objects.exclude(pk__in=[bad.pk, good.pk]).get()
    assert retried.status == Status.COMPLETED
    assert retried.created_by == user
    assert retried.title == bad.title
    assert retried.task_filter_options == options["task_filter_options"]
    assert retried.serialization_options == options["serialization_options"]
    assert Export.objects.get(pk=bad.pk).status == Status.FAILED  # the failed row stays as it was
    messages = [str(message) for message in response.context["messages"]]
    assert messages == [f"Retried 1: #{retried.pk}.", "Skipped 1 not failed."]


def test_retry_failed_conversions_converts_again(admin_client, project, user, django_capture_on_commit_callbacks):
    export = completed(project, user)
    converted = failed_conversion(export)
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            reverse(CONVERSIONS), {"action": "retry_failed", ACTION_CHECKBOX_NAME: [converted.pk]}, follow=True
        )
    assert response.status_code == 200
    converted.refresh_from_db()
    assert converted.status == Status.COMPLETED
    assert converted.traceback is None
    assert converted.file
    assert ConvertedFormat.objects.filter(export=export).count() == 1  # the same row, converted again


def test_retry_of_a_conversion_the_service_refuses_is_reported(admin_client, project, user):
    export = failed(project, user)
    converted = failed_conversion(export)
    response = admin_client.post(
        reverse(CONVERSIONS), {"action": "retry_failed", ACTION_CHECKBOX_NAME: [converted.pk]}, follow=True
    )
    messages = [str(message) for message in response.context["messages"]]
    assert len(messages) == 1
    assert messages[0].startswith(f"Not retried #{converted.pk}: Export is not completed")
    converted.refresh_from_db()
    assert converted.status == Status.FAILED


def test_delete_action_removes_rows_and_files(
    admin_client, project, user, settings, django_capture_on_commit_callbacks
):
    baseline = stored_files(settings)
    doomed = [completed(project, user, convert_to="CSV"), failed(project, user)]
    doomed_files = stored_files(settings)
    assert len(doomed_files - baseline) == 3  # the snapshot's file, its task index and its conversion's
    kept = completed(project, user)
    kept_files = baseline | (stored_files(settings) - doomed_files)
    ids = [export.pk for export in doomed]
    confirm = admin_client.post(reverse(CHANGELIST), {"action": "delete_selected", ACTION_CHECKBOX_NAME: ids})
    assert confirm.status_code == 200  # the confirmation page
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            reverse(CHANGELIST), {"action": "delete_selected", ACTION_CHECKBOX_NAME: ids, "post": "yes"}, follow=True
        )
    assert response.status_code == 200
    assert list(Export.objects.values_list("pk", flat=True)) == [kept.pk]
    assert not ConvertedFormat.objects.exists()
    assert stored_files(settings) == kept_files


def test_delete_from_the_change_page_removes_files(
    admin_client, project, user, settings, django_capture_on_commit_callbacks
):
    baseline = stored_files(settings)
    export = completed(project, user, convert_to="CSV")
    assert len(stored_files(settings) - baseline) == 3  # the snapshot's file, its task index, the CSV
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(reverse("admin:exports_export_delete", args=[export.pk]), {"post": "yes"})
    assert response.status_code == 302
    assert not Export.objects.exists()
    assert stored_files(settings) == baseline


def test_conversions_cannot_be_deleted_alone(admin_client, project, user):
    export = completed(project, user, convert_to="CSV")
    converted = export.converted_formats.get()
    response = admin_client.get(reverse("admin:exports_convertedformat_delete", args=[converted.pk]))
    assert response.status_code == 403


def test_a_user_who_is_not_staff_is_sent_to_login(project, user):
    client = Client()
    client.force_login(user)
    response = client.get(reverse(CHANGELIST))
    assert response.status_code == 302
