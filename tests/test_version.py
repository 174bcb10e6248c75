from importlib import metadata

from django.urls import reverse


def test_version_answers_without_credentials(client):
    response = client.get(reverse("version"))
    assert response.status_code == 200
    body = response.json()
    assert body["edition"] == "Community"
    assert body["release"] == metadata.version("ls-export-service")
    assert body["label-studio-os-package"]["version"] == body["release"]
    assert client.get("/api/version").status_code == 200
