"""`manage.py create_user`: create or update a user, join or create an organization, print the token last."""

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.factories import make_org, make_project
from users.models import Organization, OrganizationMember, User

pytestmark = pytest.mark.django_db

KEY = "0123456789abcdef0123456789abcdef01234567"


def create_user(*args: str) -> str:
    out = io.StringIO()
    call_command("create_user", *args, stdout=out)
    return out.getvalue()


def last_line(output: str) -> str:
    return output.rstrip("\n").splitlines()[-1]


def token_client(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def snapshot() -> dict:
    """Every row the command can touch, to compare before and after a run."""
    return {
        "users": list(User.objects.order_by("pk").values()),
        "tokens": list(Token.objects.order_by("key").values()),
        "orgs": list(Organization.objects.order_by("pk").values()),
        "members": list(OrganizationMember.objects.order_by("pk").values()),
    }


def test_prints_the_token_key_as_the_last_line():
    output = create_user("--email", "jane.doe@example.com", "--password", "s3cret-pass")
    user = User.objects.get(email="jane.doe@example.com")
    assert last_line(output) == Token.objects.get(user=user).key
    assert len(last_line(output)) == 40


def test_username_defaults_to_the_part_before_the_at():
    create_user("--email", "jane.doe@example.com", "--password", "s3cret-pass")
    user = User.objects.get(email="jane.doe@example.com")
    assert user.username == "jane.doe"
    assert user.check_password("s3cret-pass")


def test_username_can_be_given():
    create_user("--email", "jane.doe@example.com", "--password", "s3cret-pass", "--username", "jd")
    assert User.objects.get(email="jane.doe@example.com").username == "jd"


def test_creates_the_organization_and_makes_it_active():
    create_user("--email", "jane@example.com", "--password", "s3cret-pass", "--organization", "Acme")
    user = User.objects.get(email="jane@example.com")
    org = Organization.objects.get(title="Acme")
    assert user.active_organization == org
    assert list(user.organizations.all()) == [org]


def test_without_organization_the_user_still_gets_an_active_one():
    create_user("--email", "jane@example.com", "--password", "s3cret-pass")
    user = User.objects.get(email="jane@example.com")
    assert user.active_organization is not None
    assert list(user.organizations.all()) == [user.active_organization]


def test_joins_an_existing_organization_of_that_name():
    existing = make_org(title="Acme")
    create_user("--email", "jane@example.com", "--password", "s3cret-pass", "--organization", "Acme")
    user = User.objects.get(email="jane@example.com")
    assert Organization.objects.filter(title="Acme").count() == 1
    assert user.active_organization == existing
    assert OrganizationMember.objects.filter(user=user, organization=existing).count() == 1


def test_second_user_with_the_same_organization_joins_it():
    create_user("--email", "jane@example.com", "--password", "s3cret-pass", "--organization", "Acme")
    output = create_user("--email", "john@example.com", "--password", "other-pass", "--organization", "Acme")
    org = Organization.objects.get(title="Acme")
    jane, john = User.objects.get(username="jane"), User.objects.get(username="john")
    assert jane.active_organization == john.active_organization == org
    assert set(org.members.values_list("user__username", flat=True)) == {"jane", "john"}
    project = make_project(user=jane, title="Shared")
    response = token_client(last_line(output)).get(reverse("project-list"))
    assert [item["id"] for item in response.json()["results"]] == [project.pk]


def test_another_organization_becomes_active_and_the_old_membership_stays():
    create_user("--email", "jane@example.com", "--password", "s3cret-pass", "--organization", "Acme")
    create_user("--email", "jane@example.com", "--password", "s3cret-pass", "--organization", "Globex")
    user = User.objects.get(email="jane@example.com")
    assert user.active_organization.title == "Globex"
    assert set(user.organizations.values_list("title", flat=True)) == {"Acme", "Globex"}
    assert User.objects.count() == 1


def test_token_option_sets_the_key():
    output = create_user("--email", "jane@example.com", "--password", "s3cret-pass", "--token", KEY)
    assert last_line(output) == KEY
    assert Token.objects.get(key=KEY).user.email == "jane@example.com"
    assert Token.objects.count() == 1


def test_token_option_replaces_an_existing_key():
    old = last_line(create_user("--email", "jane@example.com", "--password", "s3cret-pass"))
    assert last_line(create_user("--email", "jane@example.com", "--password", "s3cret-pass", "--token", KEY)) == KEY
    assert list(Token.objects.values_list("key", flat=True)) == [KEY]
    assert token_client(old).get(reverse("project-list")).status_code == 401
    assert token_client(KEY).get(reverse("project-list")).status_code == 200


@pytest.mark.parametrize(
    "args",
    [
        ("--email", "jane@example.com", "--password", "s3cret-pass"),
        ("--email", "jane@example.com", "--password", "s3cret-pass", "--organization", "Acme"),
        ("--email", "jane@example.com", "--password", "s3cret-pass", "--username", "jd", "--token", KEY),
        ("--email", "jane@example.com", "--password", "s3cret-pass", "--organization", "Acme", "--token", KEY),
    ],
)
def test_running_again_with_the_same_arguments_changes_nothing(args):
    first = create_user(*args)
    before = snapshot()
    second = create_user(*args)
    assert snapshot() == before
    assert last_line(second) == last_line(first)
    assert User.objects.count() == 1
    assert Organization.objects.count() == 1
    assert OrganizationMember.objects.count() == 1
    assert Token.objects.count() == 1
    assert User.objects.get().check_password("s3cret-pass")
    assert token_client(last_line(second)).get(reverse("project-list")).status_code == 200


def test_running_again_with_a_new_password_updates_it():
    key = last_line(create_user("--email", "jane@example.com", "--password", "old-pass-1"))
    assert last_line(create_user("--email", "jane@example.com", "--password", "new-pass-2")) == key
    user = User.objects.get()
    assert user.check_password("new-pass-2")
    assert not user.check_password("old-pass-1")


def test_the_printed_token_authenticates():
    key = last_line(create_user("--email", "jane@example.com", "--password", "s3cret-pass", "--organization", "Acme"))
    response = token_client(key).get(reverse("project-list"))
    assert response.status_code == 200
    assert response.json()["count"] == 0
    assert token_client(key).get("/api/projects").status_code == 200


def test_a_project_created_with_the_token_lands_in_the_organization():
    key = last_line(create_user("--email", "jane@example.com", "--password", "s3cret-pass", "--organization", "Acme"))
    response = token_client(key).post(reverse("project-list"), {"title": "First"}, format="json")
    assert response.status_code == 201
    assert Organization.objects.get(title="Acme").projects.get().title == "First"


@pytest.mark.parametrize("email", ["not-an-email", "jane@", "@example.com", "jane example.com", ""])
def test_invalid_email_is_a_command_error(email):
    with pytest.raises(CommandError):
        create_user("--email", email, "--password", "s3cret-pass")
    assert User.objects.count() == 0
    assert Organization.objects.count() == 0


@pytest.mark.parametrize("missing", ["--email", "--password"])
def test_required_options(missing):
    args = {"--email": "jane@example.com", "--password": "s3cret-pass"}
    args.pop(missing)
    with pytest.raises(CommandError):
        create_user(*[part for pair in args.items() for part in pair])
    assert User.objects.count() == 0


@pytest.mark.parametrize("token", ["k" * 41, "with space"])
def test_invalid_token_is_a_command_error(token):
    with pytest.raises(CommandError):
        create_user("--email", "jane@example.com", "--password", "s3cret-pass", "--token", token)
    assert User.objects.count() == 0


def test_token_of_another_user_is_a_command_error():
    create_user("--email", "jane@example.com", "--password", "s3cret-pass", "--token", KEY)
    with pytest.raises(CommandError):
        create_user("--email", "john@example.com", "--password", "s3cret-pass", "--token", KEY)
    assert Token.objects.get(key=KEY).user.email == "jane@example.com"


def test_same_local_part_with_another_domain_does_not_crash():
    """jane@a.example and jane@b.example: either a clean CommandError or two users with distinct usernames."""
    create_user("--email", "jane@a.example", "--password", "s3cret-pass")
    try:
        create_user("--email", "jane@b.example", "--password", "s3cret-pass")
    except CommandError:
        assert User.objects.count() == 1
    else:
        assert User.objects.count() == 2
        assert User.objects.values("username").distinct().count() == 2


def test_username_of_another_user_is_a_command_error():
    create_user("--email", "jane@example.com", "--password", "s3cret-pass")
    with pytest.raises(CommandError):
        create_user("--email", "john@example.com", "--password", "s3cret-pass", "--username", "jane")
    assert list(User.objects.values_list("email", flat=True)) == ["jane@example.com"]


def test_running_again_keeps_the_token_when_none_is_given():
    first = last_line(create_user("--email", "jane@example.com", "--password", "s3cret-pass", "--token", KEY))
    assert last_line(create_user("--email", "jane@example.com", "--password", "s3cret-pass")) == first == KEY


def test_users_created_without_organization_do_not_share_one():
    """Without --organization each new user gets an organization of their own, so tenants stay apart."""
    jane = last_line(create_user("--email", "jane@example.com", "--password", "s3cret-pass"))
    john = last_line(create_user("--email", "john@example.com", "--password", "s3cret-pass"))
    first, second = User.objects.get(username="jane"), User.objects.get(username="john")
    assert first.active_organization != second.active_organization
    response = token_client(jane).post(reverse("project-list"), {"title": "Private"}, format="json")
    assert response.status_code == 201
    assert token_client(john).get(reverse("project-list")).json()["count"] == 0
