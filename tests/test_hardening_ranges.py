"""Range headers with numbers longer than `int()` converts (4300 digits) answer 416 or a clamped 206, never 500."""

import pytest

from tests.exports.helpers import create_export, download_url
from tests.factories import fill_project, make_project

pytestmark = pytest.mark.django_db

HUGE = "9" * 4301


@pytest.fixture
def project(user):
    project = make_project(user=user, title="Ranges")
    fill_project(project, user=user, count=3)
    return project


@pytest.fixture
def export(api_client, project, django_capture_on_commit_callbacks):
    return create_export(api_client, project, django_capture_on_commit_callbacks)


def body_of(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


def get(client, project, export, header: str):
    return client.get(download_url(project, export["id"]), HTTP_RANGE=header)


@pytest.fixture
def full(api_client, project, export) -> bytes:
    return body_of(api_client.get(download_url(project, export["id"])))


@pytest.mark.parametrize("header", [f"bytes={HUGE}-", f"bytes={HUGE}-{HUGE}", f"bytes={'1' * 25}-"])
def test_a_huge_start_is_unsatisfiable(api_client, project, export, full, header):
    response = get(api_client, project, export, header)
    assert response.status_code == 416
    assert response["Content-Type"] == "application/json"
    assert response.json()["status_code"] == 416
    assert response["Content-Range"] == f"bytes */{len(full)}"


@pytest.mark.parametrize("end", [HUGE, "1" * 25])
def test_a_huge_end_is_clamped_to_the_size(api_client, project, export, full, end):
    response = get(api_client, project, export, f"bytes=0-{end}")
    assert response.status_code == 206
    assert body_of(response) == full
    assert response["Content-Range"] == f"bytes 0-{len(full) - 1}/{len(full)}"
    assert response["Content-Length"] == str(len(full))

    response = get(api_client, project, export, f"bytes=5-{end}")
    assert response.status_code == 206
    assert body_of(response) == full[5:]
    assert response["Content-Range"] == f"bytes 5-{len(full) - 1}/{len(full)}"


def test_a_huge_suffix_is_the_whole_file(api_client, project, export, full):
    response = get(api_client, project, export, f"bytes=-{HUGE}")
    assert response.status_code == 206
    assert body_of(response) == full
    assert response["Content-Range"] == f"bytes 0-{len(full) - 1}/{len(full)}"


def test_leading_zeros_do_not_make_a_number_huge(api_client, project, export, full):
    response = get(api_client, project, export, f"bytes={'0' * 5000}3-{'0' * 5000}9")
    assert response.status_code == 206
    assert body_of(response) == full[3:10]
    assert response["Content-Range"] == f"bytes 3-9/{len(full)}"


def test_a_huge_range_on_head_is_answered_too(api_client, project, export, full):
    response = api_client.head(download_url(project, export["id"]), HTTP_RANGE=f"bytes={HUGE}-")
    assert response.status_code == 416
    response = api_client.head(download_url(project, export["id"]), HTTP_RANGE=f"bytes=-{HUGE}")
    assert response.status_code == 206
    assert response["Content-Length"] == str(len(full))
