"""The OpenAPI schema: valid without warnings; Label Studio's operation ids, query parameters and response types for
every endpoint of the contract (spec/API.md §2 plus the personal access token endpoints); fields/omit/expand
wherever a view honours them; and equal to the checked-in snapshot `tests/schema/openapi.json`.

Comparison failures are collected and reported together, one line per problem, so that a missing endpoint or a
renamed component shows up as a readable list rather than the first assertion that breaks.
"""

import difflib
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from django.core.management import call_command
from drf_spectacular.generators import EndpointEnumerator

from config.api.views import DynamicFieldsViewMixin

SNAPSHOT = Path(__file__).parent / "schema" / "openapi.json"
REGENERATE = "scripts/update_schema.sh"
DYNAMIC = frozenset({"fields", "omit", "expand"})
PAGES = frozenset({"page", "page_size"})


@dataclass(frozen=True)
class Operation:
    """What Label Studio 1.23.2's schema says about one operation (and what this service adds on purpose).

    `response` is the success body: a component name (`Project`), `array:<Component>`, `array`, `object` (an
    object, named or inline), `file` (a binary download) or `empty`. `request` likewise for the JSON body.
    """

    operation_id: str
    status: str
    response: str
    request: str | None = None
    query: frozenset = field(default_factory=frozenset)


CONTRACT = {
    ("get", "/api/projects/"): Operation(
        "api_projects_list",
        "200",
        "PaginatedProjectList",
        query=PAGES | DYNAMIC | {"ordering", "title", "include"},
    ),
    ("post", "/api/projects/"): Operation("api_projects_create", "201", "Project", request="ProjectRequest"),
    ("get", "/api/projects/counts/"): Operation(
        "api_projects_counts_list", "200", "PaginatedProjectCountsList", query=PAGES | DYNAMIC
    ),
    ("post", "/api/projects/validate/"): Operation(
        "api_projects_validate_create", "204", "empty", request="ProjectLabelConfigRequest"
    ),
    ("get", "/api/projects/{id}/"): Operation("api_projects_retrieve", "200", "Project", query=DYNAMIC),
    ("patch", "/api/projects/{id}/"): Operation(
        "api_projects_partial_update", "200", "Project", request="PatchedProjectRequest"
    ),
    ("delete", "/api/projects/{id}/"): Operation("api_projects_destroy", "204", "empty"),
    ("get", "/api/projects/{id}/annotators/"): Operation("api_projects_annotators_retrieve", "200", "array:UserSimple"),
    # Enterprise-only upstream (absent from the Community schema); the SDK's `projects.duplicate` calls it.
    ("post", "/api/projects/{id}/duplicate/"): Operation("api_projects_duplicate_create", "201", "object"),
    ("post", "/api/projects/{id}/import"): Operation(
        "api_projects_import_create", "201", "object", request="array", query=frozenset({"return_task_ids"})
    ),
    ("post", "/api/projects/{id}/import/predictions"): Operation(
        "api_projects_import_predictions_create", "201", "object", request="array"
    ),
    ("post", "/api/projects/{id}/validate/"): Operation(
        "api_projects_validate_label_config", "200", "object", request="ProjectLabelConfigRequest"
    ),
    ("get", "/api/projects/{id}/export/formats"): Operation("api_projects_export_formats_retrieve", "200", "array"),
    ("get", "/api/projects/{id}/export/files"): Operation("api_projects_export_files_retrieve", "200", "object"),
    ("get", "/api/projects/{id}/export"): Operation(
        "api_projects_export_retrieve",
        "200",
        "file",
        query=frozenset({"export_type", "download_all_tasks", "download_resources", "ids"}),
    ),
    ("get", "/api/projects/{id}/exports/"): Operation(
        "api_projects_exports_list", "200", "array:Export", query=DYNAMIC
    ),
    ("post", "/api/projects/{id}/exports/"): Operation(
        "api_projects_exports_create", "201", "ExportCreate", request="ExportCreateRequest"
    ),
    ("get", "/api/projects/{id}/exports/{export_pk}"): Operation(
        "api_projects_exports_retrieve", "200", "Export", query=DYNAMIC
    ),
    ("delete", "/api/projects/{id}/exports/{export_pk}"): Operation("api_projects_exports_destroy", "204", "empty"),
    ("post", "/api/projects/{id}/exports/{export_pk}/convert"): Operation(
        "api_projects_exports_convert_create", "200", "object", request="ExportConvertRequest"
    ),
    ("get", "/api/projects/{id}/exports/{export_pk}/download"): Operation(
        "api_projects_exports_download_retrieve", "200", "file", query=frozenset({"exportType"})
    ),
    # Label Studio's webhook resource (label_studio/webhooks/api.py), with our export actions.
    ("get", "/api/webhooks/"): Operation("api_webhooks_list", "200", "array:Webhook", query=DYNAMIC | {"project"}),
    ("post", "/api/webhooks/"): Operation("api_webhooks_create", "201", "Webhook", request="WebhookRequest"),
    ("get", "/api/webhooks/info/"): Operation(
        "api_webhooks_info_retrieve", "200", "object", query=frozenset({"organization-only"})
    ),
    ("get", "/api/webhooks/{id}/"): Operation("api_webhooks_retrieve", "200", "Webhook", query=DYNAMIC),
    ("put", "/api/webhooks/{id}/"): Operation(
        "api_webhooks_update", "200", "WebhookSerializerForUpdate", request="WebhookSerializerForUpdateRequest"
    ),
    ("patch", "/api/webhooks/{id}/"): Operation(
        "api_webhooks_partial_update",
        "200",
        "WebhookSerializerForUpdate",
        request="PatchedWebhookSerializerForUpdateRequest",
    ),
    ("delete", "/api/webhooks/{id}/"): Operation("api_webhooks_destroy", "204", "empty"),
    ("get", "/api/token/"): Operation("api_token_list", "200", "array:LSAPITokenList"),
    ("post", "/api/token/"): Operation("api_token_create", "201", "LSAPITokenCreate"),
    ("post", "/api/token/refresh/"): Operation(
        "api_token_refresh_create", "200", "TokenRefreshResponse", request="TokenRefreshRequest"
    ),
    ("post", "/api/token/blacklist/"): Operation(
        "api_token_blacklist_create", "204", "empty", request="LSAPITokenBlacklistRequest"
    ),
    ("post", "/api/token/rotate/"): Operation(
        "api_token_rotate_create", "200", "TokenRotateResponse", request="LSAPITokenRotateRequest"
    ),
}
# `GET /api/version/` is part of the contract but, as upstream, left out of the schema.

METHODS = {"get", "post", "put", "patch", "delete", "head", "options"}


@pytest.fixture(scope="module")
def schema(django_db_blocker) -> dict:
    """The schema as `spectacular --validate --fail-on-warn` generates it (a warning fails here)."""
    out = io.StringIO()
    with django_db_blocker.unblock():
        call_command("spectacular", "--validate", "--fail-on-warn", "--format", "openapi-json", stdout=out)
    return json.loads(out.getvalue())


def operations(schema: dict) -> dict[tuple[str, str], dict]:
    return {
        (method, path): operation
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    }


def label(key: tuple[str, str]) -> str:
    return f"{key[0].upper()} {key[1]}"


def report(problems: list[str], title: str) -> str:
    return f"{title} ({len(problems)}):\n  " + "\n  ".join(problems)


def body_kind(content: dict | None) -> str:
    """`empty`, `file`, a component name, `array:<Component>`, `array` or `object`, for a response or request."""
    if not content:
        return "empty"
    media_type, entry = next(iter(content.items()))
    body = entry.get("schema") or {}
    if body.get("format") == "binary" or (media_type != "application/json" and body.get("type") == "string"):
        return "file"
    if "$ref" in body:
        return body["$ref"].rsplit("/", 1)[-1]
    if body.get("type") == "array":
        items = body.get("items") or {}
        return f"array:{items['$ref'].rsplit('/', 1)[-1]}" if "$ref" in items else "array"
    return "object" if body.get("type", "object") == "object" else body.get("type", "?")


def kind_matches(expected: str, found: str) -> bool:
    if expected == "object":  # upstream answers an inline object; a named component is the same shape
        return found == "object" or not (found.startswith("array") or found in {"file", "empty"})
    if expected == "array":
        return found.startswith("array")
    return found == expected


def test_every_contract_endpoint_has_label_studios_operation_id(schema):
    found = operations(schema)
    missing = [
        f"{label(key)}: not in the schema (expected operationId {op.operation_id})"
        for key, op in CONTRACT.items()
        if key not in found
    ]
    wrong = [
        f"{label(key)}: operationId {found[key].get('operationId')!r}, Label Studio's is {op.operation_id!r}"
        for key, op in CONTRACT.items()
        if key in found and found[key].get("operationId") != op.operation_id
    ]
    problems = wrong + missing
    assert not problems, report(problems, "Operations that differ from Label Studio's")


def test_no_operation_outside_the_contract(schema):
    """A new endpoint is added to CONTRACT on purpose, with Label Studio's operation id, before it ships."""
    extra = [
        f"{label(key)} ({operation.get('operationId')})"
        for key, operation in operations(schema).items()
        if key not in CONTRACT
    ]
    assert not extra, report(extra, "Operations not in the contract table of tests/test_openapi.py")


def test_operation_ids_are_unique(schema):
    ids = [operation["operationId"] for operation in operations(schema).values()]
    assert len(ids) == len(set(ids))


def test_response_and_request_types_match_label_studio(schema):
    problems = []
    for key, op in CONTRACT.items():
        operation = operations(schema).get(key)
        if operation is None:
            continue  # reported by the operation id test
        responses = operation.get("responses", {})
        if op.status not in responses:
            problems.append(f"{label(key)}: no {op.status} response (has {sorted(responses)})")
        else:
            found = body_kind(responses[op.status].get("content"))
            if not kind_matches(op.response, found):
                problems.append(f"{label(key)}: {op.status} response is {found}, Label Studio's is {op.response}")
        if op.request is not None:
            found = body_kind((operation.get("requestBody") or {}).get("content"))
            if not kind_matches(op.request, found):
                problems.append(f"{label(key)}: request body is {found}, Label Studio's is {op.request}")
    assert not problems, report(problems, "Types that differ from Label Studio's")


def test_parameters_are_documented_and_path_ids_are_integers(schema):
    problems = []
    for key, op in CONTRACT.items():
        operation = operations(schema).get(key)
        if operation is None:
            continue
        parameters = {(p["name"], p["in"]): p for p in operation.get("parameters", [])}
        query = {name for name, where in parameters if where == "query"}
        if missing := op.query - query:
            problems.append(f"{label(key)}: query parameters not documented: {sorted(missing)}")
        for name in re.findall(r"{(\w+)}", key[1]):
            parameter = parameters.get((name, "path"))
            if parameter is None or parameter["schema"].get("type") != "integer":
                problems.append(f"{label(key)}: path parameter {name} is not an integer")
    assert not problems, report(problems, "Parameter problems")


def test_dynamic_field_parameters_on_every_view_that_takes_them(schema):
    paths = schema["paths"]
    views = [
        (path, method.lower(), callback)
        for path, _regex, method, callback in EndpointEnumerator().get_api_endpoints()
        if method == "GET" and issubclass(callback.cls, DynamicFieldsViewMixin)
    ]
    assert len(views) >= 4  # project list, counts and detail; snapshot list and detail
    undocumented = [
        f"GET {path} ({callback.cls.__name__})"
        for path, method, callback in views
        if path in paths
        and method in paths[path]
        and not DYNAMIC.issubset(p["name"] for p in paths[path][method].get("parameters", []))
    ]
    assert not undocumented, report(undocumented, "Views that honour fields/omit/expand without documenting them")


def test_authentication_schemes(schema):
    schemes = schema["components"]["securitySchemes"]
    assert schemes["Token"] == {**schemes["Token"], "type": "apiKey", "in": "header", "name": "Authorization"}
    assert schemes["Bearer"]["type"] == "http"
    assert schemes["Bearer"]["scheme"] == "bearer"
    projects = schema["paths"]["/api/projects/"]["get"]["security"]
    assert {"Token": []} in projects
    assert {"Bearer": []} in projects
    assert schema["paths"]["/api/token/refresh/"]["post"].get("security", []) in ([], [{}])


def test_snapshot_status_enum_is_label_studios(schema):
    status = schema["components"]["schemas"]["Status7bfEnum"]["enum"]
    assert status == ["created", "in_progress", "failed", "completed"]


def normalized(document: dict) -> list[str]:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False).splitlines()


def test_schema_equals_the_checked_in_snapshot(schema):
    """A change to the API shows up as a change of tests/schema/openapi.json, reviewed with the code."""
    assert SNAPSHOT.exists(), f"No schema snapshot at {SNAPSHOT}; create it with {REGENERATE}"
    expected = json.loads(SNAPSHOT.read_text(encoding="utf-8"))
    if expected == schema:
        return
    diff = list(
        difflib.unified_diff(
            normalized(expected), normalized(schema), "tests/schema/openapi.json", "generated", lineterm=""
        )
    )
    shown = "\n".join(diff[:200]) + (f"\n... {len(diff) - 200} more diff lines" if len(diff) > 200 else "")
    pytest.fail(
        f"The generated schema differs from the snapshot. If the change is intended, run {REGENERATE} and "
        f"commit tests/schema/openapi.json.\n{shown}"
    )


@pytest.mark.django_db
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


@pytest.mark.django_db
def test_swagger_ui_assets_are_served_by_the_service(client):
    response = client.get("/docs/api/")
    assert response.status_code == 200
    html = response.content.decode()
    # No absolute URL anywhere (a CDN would be one); the page's random CSRF token may spell anything.
    assert re.findall(r"(?:https?:)?//[\w.-]+\.\w+/", html) == []
    assert all(link.startswith("/static/") for link in re.findall(r'(?:src|href)="([^"]+)"', html))
    assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', html)
    assert any(asset.endswith("swagger-ui-bundle.js") for asset in assets)
    for asset in assets:
        served = client.get(asset)
        assert served.status_code == 200, asset


# What generated clients need (openapi-python-client, @hey-api/openapi-ts; tests/clients runs both).


def _walk(node, path="#"):
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from _walk(value, f"{path}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk(value, f"{path}/{index}")


def test_request_bodies_are_json(schema):
    """JSON only: the form encodings of the default parsers stay out of the schema (a generator would pick one and
    lose JSON's types and defaults)."""
    problems = [
        f"{label(key)}: {sorted(operation['requestBody']['content'])}"
        for key, operation in operations(schema).items()
        if "requestBody" in operation and list(operation["requestBody"]["content"]) != ["application/json"]
    ]
    assert not problems, report(problems, "request bodies other than JSON")


def test_no_default_beside_a_reference(schema):
    found = [path for path, node in _walk(schema) if "default" in node and ("$ref" in node or "allOf" in node)]
    assert not found, report(found, "a default beside a $ref")


def test_downloads_are_binary(schema):
    for path in ("/api/projects/{id}/exports/{export_pk}/download", "/api/projects/{id}/export"):
        responses = schema["paths"][path]["get"]["responses"]
        for code in ("200", "206") if "206" in responses else ("200",):
            content = responses[code]["content"]
            assert next(iter(content)) == "application/octet-stream", path
            assert {"application/json", "application/zip", "text/csv"} <= set(content), path
            for kind, media in content.items():
                # A JSON file is any JSON value, so that validating clients can check what they parse.
                expected = {} if kind == "application/json" else {"type": "string", "format": "binary"}
                assert media["schema"] == expected, (path, code, kind)


def test_shortenable_responses_require_no_field(schema):
    """`fields`/`omit` can leave any property out, so the response components of those views list none as
    required; `expand` adds documented optional properties."""
    components = schema["components"]["schemas"]
    for name in ("Export", "ExportCreate", "ConvertedFormat", "UserSimple", "Project", "ProjectSimple"):
        assert "required" not in components[name], name
    assert components["Export"]["properties"]["project"]["allOf"] == [{"$ref": "#/components/schemas/ProjectSimple"}]
    assert components["Error"]["required"] == ["detail", "exc_info", "id", "status_code", "version"]


def test_every_error_response_has_the_error_body(schema):
    problems = [
        f"{label(key)} {code}"
        for key, operation in operations(schema).items()
        for code, response in operation["responses"].items()
        if code >= "400"
        and response.get("content") != {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    ]
    assert not problems, report(problems, "error responses without the error body")


def test_operations_describe_themselves(schema):
    """No operation borrows a mixin's docstring (those describe code, not the endpoint)."""
    borrowed = [
        label(key)
        for key, operation in operations(schema).items()
        if any(text in operation.get("description", "") for text in ("View half of", "Resolves the project of"))
    ]
    assert not borrowed, report(borrowed, "operations described by a mixin's docstring")
