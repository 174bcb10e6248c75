"""/api/webhooks/: Label Studio's webhook resource, scoped to the caller's organization, with a write-only secret
and targets checked against the SSRF rules (WEBHOOK_HOSTS)."""

import socket

import pytest
from django.urls import reverse

from exports.models import Webhook
from tests.factories import make_project

pytestmark = pytest.mark.django_db

LABEL_STUDIO_KEYS = {
    "id",
    "organization",
    "project",
    "url",
    "send_payload",
    "send_for_all_actions",
    "headers",
    "is_active",
    "actions",
    "created_at",
    "updated_at",
}
WEBHOOK_KEYS = LABEL_STUDIO_KEYS | {"last_delivery_status", "last_delivery_error", "last_delivery_at"}
PUBLIC_ADDRESS = "93.184.215.14"
NAMES = {"hooks.example.com": PUBLIC_ADDRESS, "localhost": "127.0.0.1", "inside.example.com": "10.1.2.3"}


@pytest.fixture(autouse=True)
def fake_dns(monkeypatch, settings):
    """Host names resolve without a network: a public one, `localhost` and one inside a private network."""
    settings.WEBHOOK_HOSTS = []
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host in NAMES:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (NAMES[host], port))]
        if host.endswith(".invalid"):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def list_url() -> str:
    return reverse("webhook-list")


def detail_url(webhook_id: int) -> str:
    return reverse("webhook-detail", kwargs={"pk": webhook_id})


def create(client, **body) -> dict:
    response = client.post(list_url(), {"url": "https://hooks.example.com/in", **body}, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def test_create_with_label_studios_defaults(api_client, org):
    body = create(api_client)
    assert set(body) == WEBHOOK_KEYS
    assert body["organization"] == org.pk
    assert body["project"] is None
    assert body["url"] == "https://hooks.example.com/in"
    assert body["send_payload"] is True
    assert body["send_for_all_actions"] is True
    assert body["is_active"] is True
    assert body["headers"] == {}
    assert body["actions"] == []
    assert body["last_delivery_status"] is None
    assert body["last_delivery_error"] is None
    assert body["last_delivery_at"] is None
    assert body["created_at"].endswith("Z")


def test_the_secret_is_stored_and_never_shown(api_client):
    body = create(api_client, secret="s3cret ")
    assert "secret" not in body
    assert Webhook.objects.get(pk=body["id"]).secret == "s3cret "
    assert "secret" not in api_client.get(detail_url(body["id"])).json()
    assert all("secret" not in item for item in api_client.get(list_url()).json())
    patched = api_client.patch(detail_url(body["id"]), {"secret": "other"}, format="json")
    assert "secret" not in patched.json()
    assert Webhook.objects.get(pk=body["id"]).secret == "other"
    api_client.patch(detail_url(body["id"]), {"is_active": False}, format="json")
    assert Webhook.objects.get(pk=body["id"]).secret == "other"  # left out: kept


def test_project_webhook_and_list_filter(api_client, user):
    project = make_project(user=user)
    own = create(api_client, project=project.pk, send_for_all_actions=False, actions=["EXPORT_COMPLETED"])
    everywhere = create(api_client)
    assert own["project"] == project.pk
    assert own["actions"] == ["EXPORT_COMPLETED"]
    assert [item["id"] for item in api_client.get(list_url()).json()] == [own["id"], everywhere["id"]]
    assert [item["id"] for item in api_client.get(f"{list_url()}?project={project.pk}").json()] == [own["id"]]
    assert [item["id"] for item in api_client.get(f"{list_url()}?project=isnull").json()] == [everywhere["id"]]
    response = api_client.get(f"{list_url()}?project=nope")
    assert response.status_code == 400
    assert "project" in response.json()["validation_errors"]


def test_patch_put_and_delete(api_client, user):
    project = make_project(user=user)
    body = create(api_client, actions=["EXPORT_FAILED"], headers={"X-Token": "abc"})
    other = make_project(user=user, title="Other")
    response = api_client.patch(
        detail_url(body["id"]), {"send_payload": False, "project": other.pk, "url": "http://hooks.example.com/2"}
    )
    assert response.status_code == 200, response.content
    patched = response.json()
    assert set(patched) == WEBHOOK_KEYS
    assert patched["send_payload"] is False
    assert patched["url"] == "http://hooks.example.com/2"
    assert patched["project"] is None  # fixed once created, as Label Studio
    assert patched["actions"] == ["EXPORT_FAILED"]  # not sent: kept
    assert patched["headers"] == {"X-Token": "abc"}

    response = api_client.put(
        detail_url(body["id"]), {"url": "https://hooks.example.com/3", "actions": []}, format="json"
    )
    assert response.status_code == 200, response.content
    assert response.json()["url"] == "https://hooks.example.com/3"
    assert response.json()["actions"] == []
    assert api_client.put(detail_url(body["id"]), {"is_active": False}, format="json").status_code == 400  # no url

    project_hook = create(api_client, project=project.pk)
    assert api_client.delete(detail_url(project_hook["id"])).status_code == 204
    assert api_client.get(detail_url(project_hook["id"])).status_code == 404


def test_another_organization_sees_nothing(api_client, other_client):
    body = create(api_client)
    assert other_client.get(list_url()).json() == []
    for method in ("get", "patch", "put", "delete"):
        response = getattr(other_client, method)(detail_url(body["id"]), {"url": "https://hooks.example.com/x"})
        assert response.status_code == 404, method
        assert response.json()["status_code"] == 404
    assert Webhook.objects.get(pk=body["id"]).url == "https://hooks.example.com/in"


def test_a_project_of_another_organization_is_refused_like_a_missing_one(api_client, other_user):
    foreign = make_project(user=other_user)
    for value in (foreign.pk, 10**9, 10**30, "abc", True):
        response = api_client.post(list_url(), {"url": "https://hooks.example.com/in", "project": value}, format="json")
        assert response.status_code == 400, value
        assert list(response.json()["validation_errors"]) == ["project"]
    missing = api_client.post(list_url(), {"url": "https://hooks.example.com/in", "project": 10**9}, format="json")
    hidden = api_client.post(list_url(), {"url": "https://hooks.example.com/in", "project": foreign.pk}, format="json")
    assert missing.json()["validation_errors"]["project"] == [f'Invalid pk "{10**9}" - object does not exist.']
    assert hidden.json()["validation_errors"]["project"] == [f'Invalid pk "{foreign.pk}" - object does not exist.']
    assert not Webhook.objects.exists()


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"actions": ["EXPORT_COMPLETED", "PROJECT_CREATED"]}, "actions", "is not a valid choice"),
        ({"actions": "EXPORT_COMPLETED"}, "actions", "Expected a list"),
        ({"url": "not a url"}, "url", "Enter a valid URL"),
        ({"url": "ftp://hooks.example.com/in"}, "url", "only http and https"),
        ({"url": "http://user:pw@hooks.example.com/in"}, "url", "credentials"),
        ({"url": "http://127.0.0.1:8080/in"}, "url", "non-public address (127.0.0.1)"),
        ({"url": "http://localhost/in"}, "url", "non-public address (127.0.0.1)"),
        ({"url": "http://[::1]/in"}, "url", "non-public address (::1)"),
        ({"url": "http://169.254.169.254/latest"}, "url", "non-public address (169.254.169.254)"),
        ({"url": "https://inside.example.com/in"}, "url", "non-public address (10.1.2.3)"),
        ({"url": "https://nowhere.invalid/in"}, "url", "does not resolve"),
        ({"headers": ["X-A"]}, "headers", "Expected a dictionary"),
        ({"headers": {"X A": "1"}}, "headers", "may hold only"),
        ({"headers": {"Host": "evil"}}, "headers", "set by the delivery itself"),
        ({"headers": {"x-webhook-signature": "forged"}}, "headers", "set by the delivery itself"),
        ({"headers": {"X-A": "1\r\nX-B: 2"}}, "headers", "printable ASCII"),
        ({"headers": {f"X-{n}": "1" for n in range(11)}}, "headers", "At most 10"),
    ],
)
def test_invalid_input_is_a_400_naming_the_field(api_client, body, field, message):
    response = api_client.post(list_url(), {"url": "https://hooks.example.com/in", **body}, format="json")
    assert response.status_code == 400, response.content
    error = response.json()
    assert error["detail"] == "Validation error"
    assert list(error["validation_errors"]) == [field]
    assert message in str(error["validation_errors"][field])
    assert not Webhook.objects.exists()


def test_private_targets_are_allowed_when_listed(api_client, settings):
    settings.WEBHOOK_HOSTS = ["127.0.0.1", "inside.example.com", "::1"]
    for url in ("http://127.0.0.1:8080/in", "https://inside.example.com/in", "http://[::1]/in"):
        assert create(api_client, url=url)["url"] == url
    response = api_client.post(list_url(), {"url": "http://localhost/in"}, format="json")
    assert response.status_code == 201  # localhost is not listed, but the address it resolves to is
    settings.WEBHOOK_HOSTS = []
    response = api_client.patch(detail_url(response.json()["id"]), {"url": "http://localhost/other"}, format="json")
    assert response.status_code == 400
    assert "WEBHOOK_HOSTS" in response.json()["validation_errors"]["url"][0]


def test_credentials_are_required(client):
    assert client.get(list_url()).status_code == 401
    assert client.post(list_url(), {"url": "https://hooks.example.com/in"}).status_code == 401
    assert client.get(detail_url(1)).status_code == 401


def test_fields_and_omit(api_client):
    body = create(api_client)
    assert set(api_client.get(f"{detail_url(body['id'])}?fields=id,url").json()) == {"id", "url"}
    assert set(api_client.get(f"{list_url()}?omit=headers").json()[0]) == WEBHOOK_KEYS - {"headers"}
    assert api_client.get(f"{list_url()}?fields=secret").json() == [{}]  # write-only: never shown
    response = api_client.get(f"{list_url()}?fields=nope")
    assert response.status_code == 400
    assert "fields" in response.json()["validation_errors"]


def test_list_query_count_does_not_grow(api_client, user, django_assert_num_queries):
    project = make_project(user=user)
    create(api_client, project=project.pk)
    with django_assert_num_queries(2):  # token with its user, the webhooks
        first = api_client.get(list_url())
    for _ in range(4):
        create(api_client, project=project.pk)
    with django_assert_num_queries(2):
        assert len(api_client.get(list_url()).json()) == len(first.json()) + 4


def test_a_project_deletion_deletes_its_webhooks(api_client, user):
    project = make_project(user=user)
    body = create(api_client, project=project.pk)
    kept = create(api_client)
    assert api_client.delete(reverse("project-detail", kwargs={"pk": project.pk})).status_code == 204
    assert list(Webhook.objects.values_list("pk", flat=True)) == [kept["id"]]
    assert api_client.get(detail_url(body["id"])).status_code == 404


def test_info_lists_the_actions(api_client):
    info = api_client.get(reverse("webhook-info")).json()
    assert list(info) == ["EXPORT_COMPLETED", "EXPORT_FAILED", "CONVERSION_COMPLETED", "CONVERSION_FAILED"]
    assert info["EXPORT_COMPLETED"]["organization-only"] is False
    assert set(info["CONVERSION_FAILED"]) == {"name", "description", "key", "organization-only"}
    assert api_client.get(reverse("webhook-info") + "?organization-only=true").json() == {}
    assert len(api_client.get(reverse("webhook-info") + "?organization-only=false").json()) == 4
