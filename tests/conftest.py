import os

import pytest
from django.db import connection
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.factories import make_org, make_user


def pytest_collection_modifyitems(config, items):
    """Tests marked `postgres` run only when DATABASE_URL points at PostgreSQL."""
    if os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")):
        return
    skip = pytest.mark.skip(reason="needs PostgreSQL (set DATABASE_URL)")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _isolated_files(settings, tmp_path):
    """Each test writes export files into its own folder and runs jobs synchronously at commit."""
    settings.DATA_DIR = tmp_path
    settings.STORAGES = {
        **settings.STORAGES,
        "exports": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "exports")},
        },
    }
    settings.JOBS_BACKEND = "sync"


@pytest.fixture
def org(db):
    return make_org(title="Org A")


@pytest.fixture
def user(org):
    return make_user(email="alice@example.com", organization=org)


def client_for(user) -> APIClient:
    token, _ = Token.objects.get_or_create(user=user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def api_client(user):
    return client_for(user)


@pytest.fixture
def other_user(db):
    return make_user(email="mallory@example.com", organization=make_org(title="Org B"))


@pytest.fixture
def other_client(other_user):
    return client_for(other_user)


@pytest.fixture
def db_vendor(db):
    return connection.vendor


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
