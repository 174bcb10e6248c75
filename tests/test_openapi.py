import io
import json
import re

import pytest
import yaml
from django.core.management import call_command

pytestmark = pytest.mark.django_db

LABEL_STUDIO_OPERATIONS = {
    ("get", "/api/projects/"): "api_projects_list",
    ("post", "/api/projects/"): "api_projects_create",
    ("get", "/api/projects/counts/"): "api_projects_counts_list",
    ("get", "/api/projects/{id}/"): "api_projects_retrieve",
    ("patch", "/api/projects/{id}/"): "api_projects_partial_update",
    ("delete", "/api/projects/{id}/"): "api_projects_destroy",
    ("post", "/api/projects/{id}/import"): "api_projects_import_create",
    ("post", "/api/projects/{id}/import/predictions"): "api_projects_import_predictions_create",
    ("get", "/api/projects/{id}/exports/"): "api_projects_exports_list",
    ("post", "/api/projects/{id}/exports/"): "api_projects_exports_create",
    ("get", "/api/projects/{id}/exports/{export_pk}"): "api_projects_exports_retrieve",
    ("delete", "/api/projects/{id}/exports/{export_pk}"): "api_projects_exports_destroy",
    ("get", "/api/projects/{id}/exports/{export_pk}/download"): "api_projects_exports_download_retrieve",
    ("get", "/api/projects/{id}/export"): "api_projects_export_retrieve",
}


def generated_schema() -> dict:
    out = io.StringIO()
    call_command("spectacular", "--validate", "--fail-on-warn", "--format", "openapi-json", stdout=out)
    return json.loads(out.getvalue())


def test_schema_is_valid_without_warnings_and_uses_label_studio_operation_ids():
    schema = generated_schema()
    found = {
        (method, path): operation["operationId"]
        for path, item in schema["paths"].items()
        for method, operation in item.items()
    }
    for key, operation_id in LABEL_STUDIO_OPERATIONS.items():
        assert found.get(key) == operation_id, key


def test_dynamic_field_parameters_are_documented():
    schema = generated_schema()
    parameters = {p["name"] for p in schema["paths"]["/api/projects/{id}/exports/{export_pk}"]["get"]["parameters"]}
    assert {"fields", "omit", "expand"} <= parameters
    status = schema["components"]["schemas"]["Status7bfEnum"]["enum"]
    assert status == ["created", "in_progress", "failed", "completed"]


def test_schema_endpoints(client):
    response = client.get("/api/schema/")
    assert response.status_code == 200
    assert (
        "api_projects_exports_retrieve"
        in yaml.safe_load(response.content)["paths"]["/api/projects/{id}/exports/{export_pk}"]["get"]["operationId"]
    )
    assert client.get("/api/schema/?format=json").json()["openapi"].startswith("3.")
    response = client.get("/docs/api/schema/json/")
    assert response.status_code == 200
    assert response.json()["info"]["title"]


def test_swagger_ui_assets_are_served_by_the_service(client):
    response = client.get("/docs/api/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "cdn" not in html.lower()
    assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', html)
    assert any(asset.endswith("swagger-ui-bundle.js") for asset in assets)
    for asset in assets:
        served = client.get(asset)
        assert served.status_code == 200, asset
