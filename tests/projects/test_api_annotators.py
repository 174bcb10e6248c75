"""GET /api/projects/{id}/annotators/: the users who annotated the project, by id."""

import pytest
from django.urls import reverse

from tests.factories import fill_project, make_project, make_user

pytestmark = pytest.mark.django_db


def annotators_url(project) -> str:
    return reverse("project-annotators", kwargs={"pk": project.pk})


@pytest.fixture
def project(user):
    return make_project(user=user)


def test_empty_project_has_no_annotators(api_client, project):
    response = api_client.get(annotators_url(project))
    assert response.status_code == 200
    assert response.json() == []


def test_annotators_are_unique_ordered_by_id_and_shaped_as_user_simple(api_client, user, org, project):
    bob = make_user(email="bob@example.com", organization=org, first_name="Bob", last_name="B")
    carol = make_user(email="carol@example.com", organization=org)
    fill_project(project, user=bob, count=2)
    fill_project(project, user=user, count=1, cancelled=True)  # a skip is an annotation by its user too
    fill_project(project, user=bob, count=1)
    # Carol annotated another project only.
    fill_project(make_project(user=carol, title="Other"), user=carol, count=1)

    response = api_client.get(annotators_url(project))
    assert response.status_code == 200
    assert response.json() == [
        {"id": user.pk, "username": "alice", "first_name": "", "last_name": "", "email": user.email, "avatar": None},
        {"id": bob.pk, "username": "bob", "first_name": "Bob", "last_name": "B", "email": bob.email, "avatar": None},
    ]


def test_deleted_annotator_is_not_listed(api_client, user, org, project):
    bob = make_user(email="bob@example.com", organization=org)
    fill_project(project, user=bob, count=1)
    bob.delete()  # the annotation stays, with no author
    assert api_client.get(annotators_url(project)).json() == []


def test_dynamic_fields(api_client, user, project):
    fill_project(project, user=user, count=1)
    assert api_client.get(annotators_url(project) + "?fields=id,email").json() == [{"id": user.pk, "email": user.email}]
    assert "avatar" not in api_client.get(annotators_url(project) + "?omit=avatar").json()[0]
    response = api_client.get(annotators_url(project) + "?fields=nope")
    assert response.status_code == 400
    assert "fields" in response.json()["validation_errors"]


def test_other_organization_gets_404(other_client, user, project):
    fill_project(project, user=user, count=1)
    response = other_client.get(annotators_url(project))
    assert response.status_code == 404
    assert response.json()["detail"] == "No Project matches the given query."


def test_unauthenticated_gets_401(client, project):
    assert client.get(annotators_url(project)).status_code == 401


@pytest.mark.parametrize("annotators", [1, 5])
def test_query_count_does_not_grow_with_annotators(
    api_client, user, org, project, annotators, django_assert_num_queries
):
    for index in range(annotators):
        fill_project(project, user=make_user(email=f"u{index}@example.com", organization=org), count=2)
    with django_assert_num_queries(3):  # token, project, users
        response = api_client.get(annotators_url(project))
    assert len(response.json()) == annotators
