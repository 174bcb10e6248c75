"""The scripted flow, through a Python client that openapi-python-client generated from the checked-in schema.

`run(base_url, token)` imports the generated package `lsexport_client` (the caller puts it on sys.path) and walks
every operation a data team uses, the way a new user would: no raw HTTP, only the generated functions and models.
Each step checks what it got; the first failed check raises AssertionError naming the step. The TypeScript flow
(tests/clients/ts/flow.ts) takes the same steps.
"""

import hashlib
import json
import time
from typing import Any

LABEL_CONFIG = (
    '<View><Text name="text" value="$text"/>'
    '<Choices name="sentiment" toName="text"><Choice value="pos"/><Choice value="neg"/></Choices></View>'
)
TASK_COUNT = 3


def _choice(value: str) -> dict:
    return {"from_name": "sentiment", "to_name": "text", "type": "choices", "value": {"choices": [value]}}


def _ok(result, kind, step: str):
    assert isinstance(result, kind), f"{step}: expected {kind.__name__}, got {result!r}"
    return result


def run(base_url: str, token: str, *, timeout: float = 60.0) -> dict[str, Any]:
    """Walk the flow against a live server; returns a few facts for the caller to check."""
    from lsexport_client import AuthenticatedClient, Client
    from lsexport_client.api.api import (
        api_projects_create,
        api_projects_duplicate_create,
        api_projects_export_formats_retrieve,
        api_projects_exports_convert_create,
        api_projects_exports_create,
        api_projects_exports_download_retrieve,
        api_projects_exports_list,
        api_projects_exports_retrieve,
        api_projects_import_create,
        api_projects_import_predictions_create,
        api_projects_list,
        api_projects_partial_update,
        api_projects_retrieve,
        api_projects_validate_create,
        api_projects_validate_label_config,
    )
    from lsexport_client.api.tokens import (
        api_token_blacklist_create,
        api_token_create,
        api_token_list,
        api_token_refresh_create,
        api_token_rotate_create,
    )
    from lsexport_client.models import (
        AnnotationFilterOptionsRequest,
        ApiProjectsExportsDownloadRetrieveExportType,
        ApiProjectsImportCreateBodyItem,
        Error,
        Export,
        ExportConvertRequest,
        ExportConvertResponse,
        ExportCreate,
        ExportCreateRequest,
        ExportFormat,
        ImportResponse,
        LSAPITokenBlacklistRequest,
        LSAPITokenCreate,
        LSAPITokenRotateRequest,
        ModeEnum,
        OnlyIdRequest,
        PatchedProjectRequest,
        PredictionImportRequest,
        PredictionImportRequestResultItem,
        PredictionImportResponse,
        Project,
        ProjectDuplicateRequest,
        ProjectDuplicateResponse,
        ProjectLabelConfigRequest,
        ProjectLabelConfigValidation,
        ProjectRequest,
        SerializationOptionsRequest,
        Status7BfEnum,
        TaskFilterOptionsRequest,
        TokenRefreshRequest,
        TokenRefreshResponse,
        TokenRotateResponse,
    )
    from lsexport_client.models.annotated_enum import AnnotatedEnum
    from lsexport_client.types import UNSET, File

    api = AuthenticatedClient(base_url=base_url, token=token, prefix="Token", timeout=timeout)

    def wait_for(step: str, check, *, seconds: float = timeout):
        deadline = time.monotonic() + seconds
        while True:
            value = check()
            if value is not None:
                return value
            assert time.monotonic() < deadline, f"{step}: not done after {seconds} s"
            time.sleep(0.1)

    # Projects: list, create (JSON defaults hold), patch, get.
    before = _ok(api_projects_list.sync(client=api), object, "list projects")
    created = _ok(
        api_projects_create.sync(client=api, body=ProjectRequest(title="Generated client", label_config=LABEL_CONFIG)),
        Project,
        "create project",
    )
    assert created.show_skip_button is True, "create: JSON defaults"
    assert created.enable_empty_annotation is True, "create: JSON defaults"
    project_id = created.id
    assert isinstance(project_id, int)
    patched = api_projects_partial_update.sync(
        project_id, client=api, body=PatchedProjectRequest(description="made by a generated client")
    )
    assert _ok(patched, Project, "patch project").description == "made by a generated client"
    fetched = _ok(api_projects_retrieve.sync(project_id, client=api), Project, "get project")
    assert fetched.title == "Generated client"

    # Import tasks (a JSON list, annotations included) and predictions for them.
    tasks = [
        ApiProjectsImportCreateBodyItem.from_dict(
            {"data": {"text": f"text {n}"}, "annotations": [{"result": [_choice("pos" if n % 2 else "neg")]}]}
        )
        for n in range(TASK_COUNT)
    ]
    imported = _ok(
        api_projects_import_create.sync(project_id, client=api, body=tasks, return_task_ids=True),
        ImportResponse,
        "import tasks",
    )
    assert imported.task_count == TASK_COUNT, imported
    assert imported.annotation_count == TASK_COUNT, imported
    task_ids = imported.task_ids
    assert isinstance(task_ids, list), f"import: task ids {task_ids!r}"
    assert len(task_ids) == TASK_COUNT, f"import: task ids {task_ids!r}"
    predictions = [
        PredictionImportRequest(
            task=task_id,
            result=[PredictionImportRequestResultItem.from_dict(_choice("pos"))],
            score=0.5,
            model_version="v1",
        )
        for task_id in task_ids
    ]
    predicted = api_projects_import_predictions_create.sync(project_id, client=api, body=predictions)
    assert _ok(predicted, PredictionImportResponse, "import predictions").created == TASK_COUNT

    # Formats.
    formats = api_projects_export_formats_retrieve.sync(project_id, client=api)
    assert isinstance(formats, list), formats
    assert all(isinstance(fmt, ExportFormat) for fmt in formats), formats
    names = {fmt.name for fmt in formats}
    assert {"JSON", "CSV"} <= names, names

    # A snapshot with every option family; the answer shows it as recorded.
    request = ExportCreateRequest(
        title="every option",
        task_filter_options=TaskFilterOptionsRequest(annotated=AnnotatedEnum.ONLY, only_with_annotations=True),
        annotation_filter_options=AnnotationFilterOptionsRequest(usual=True, ground_truth=True, skipped=False),
        serialization_options=SerializationOptionsRequest(
            drafts=OnlyIdRequest(only_id=True),
            predictions=OnlyIdRequest(only_id=False),
            annotations_completed_by=OnlyIdRequest(only_id=True),
            include_annotation_history=False,
            interpolate_key_frames=False,
        ),
    )
    snapshot = _ok(api_projects_exports_create.sync(project_id, client=api, body=request), ExportCreate, "snapshot")
    assert snapshot.status == Status7BfEnum.CREATED, f"create snapshot: status {snapshot.status}"
    export_id = snapshot.id
    assert isinstance(export_id, int)

    def completed() -> Export | None:
        body = api_projects_exports_retrieve.sync(project_id, export_id, client=api)
        assert _ok(body, Export, "poll").status != Status7BfEnum.FAILED, "snapshot failed"
        return body if body.status == Status7BfEnum.COMPLETED else None

    done = wait_for("snapshot", completed)
    assert isinstance(done.md5, str)
    assert len(done.md5) == 32
    assert isinstance(done.counters, dict), done.counters
    assert done.counters.get("task_number") == TASK_COUNT, done.counters

    # The same snapshot shortened and expanded: a strict client still parses it.
    short = _ok(
        api_projects_exports_retrieve.sync(project_id, export_id, client=api, fields="id,status"), Export, "fields"
    )
    assert short.id == export_id
    assert short.title is UNSET
    assert short.md5 is UNSET
    lean = _ok(api_projects_exports_retrieve.sync(project_id, export_id, client=api, omit="created_by"), Export, "omit")
    assert lean.created_by is UNSET
    assert lean.md5 == done.md5
    expanded = api_projects_exports_retrieve.sync(project_id, export_id, client=api, expand="project")
    assert _ok(expanded, Export, "expand").project is not UNSET
    assert expanded.project.id == project_id

    listed = api_projects_exports_list.sync(project_id, client=api)
    assert isinstance(listed, list), listed
    assert [item.id for item in listed] == [export_id], listed

    # Download: the bytes are the file the md5 names.
    file = _ok(api_projects_exports_download_retrieve.sync(project_id, export_id, client=api), File, "download")
    data = file.payload.read()
    assert hashlib.md5(data).hexdigest() == done.md5, "download: md5 differs"

    # Convert to CSV, wait, download it.
    converted = api_projects_exports_convert_create.sync(
        project_id, export_id, client=api, body=ExportConvertRequest(export_type="CSV")
    )
    assert _ok(converted, ExportConvertResponse, "convert").export_type == "CSV"

    def csv_done() -> bool | None:
        body = _ok(api_projects_exports_retrieve.sync(project_id, export_id, client=api), Export, "poll convert")
        states = {item.export_type: item.status for item in body.converted_formats or []}
        assert states.get("CSV") != Status7BfEnum.FAILED, "conversion failed"
        return True if states.get("CSV") == Status7BfEnum.COMPLETED else None

    wait_for("conversion", csv_done)
    csv_file = api_projects_exports_download_retrieve.sync(
        project_id, export_id, client=api, export_type=ApiProjectsExportsDownloadRetrieveExportType.CSV
    )
    csv_text = _ok(csv_file, File, "download CSV").payload.read().decode()
    assert len(csv_text.strip().splitlines()) == TASK_COUNT + 1, csv_text[:200]
    assert "sentiment" in csv_text.splitlines()[0], csv_text[:200]

    # Our extensions, through the same generated code: JSON Lines, then an incremental snapshot of the unchanged
    # project (no task written, none deleted) and its deleted-ids file.
    jsonl = api_projects_exports_convert_create.sync(
        project_id, export_id, client=api, body=ExportConvertRequest(export_type="JSONL")
    )
    assert _ok(jsonl, ExportConvertResponse, "convert JSONL").export_type == "JSONL"

    def jsonl_done() -> bool | None:
        body = _ok(api_projects_exports_retrieve.sync(project_id, export_id, client=api), Export, "poll JSONL")
        states = {item.export_type: item.status for item in body.converted_formats or []}
        assert states.get("JSONL") != Status7BfEnum.FAILED, "JSONL conversion failed"
        return True if states.get("JSONL") == Status7BfEnum.COMPLETED else None

    wait_for("JSONL conversion", jsonl_done)
    jsonl_file = api_projects_exports_download_retrieve.sync(
        project_id, export_id, client=api, export_type=ApiProjectsExportsDownloadRetrieveExportType.JSONL
    )
    lines = _ok(jsonl_file, File, "download JSONL").payload.read().splitlines()
    assert len(lines) == TASK_COUNT, lines[:2]
    assert [json.loads(line)["id"] for line in lines] == [task["id"] for task in json.loads(data)]

    since = api_projects_exports_create.sync(
        project_id,
        client=api,
        body=ExportCreateRequest(  # the base's options: with others every task would count as changed
            title="since",
            since_export=export_id,
            task_filter_options=request.task_filter_options,
            annotation_filter_options=request.annotation_filter_options,
            serialization_options=request.serialization_options,
        ),
    )
    since_id = _ok(since, ExportCreate, "incremental snapshot").id
    assert isinstance(since_id, int)

    def since_done() -> Export | None:
        body = api_projects_exports_retrieve.sync(project_id, since_id, client=api)
        assert _ok(body, Export, "poll incremental").status != Status7BfEnum.FAILED, "incremental snapshot failed"
        return body if body.status == Status7BfEnum.COMPLETED else None

    increment = wait_for("incremental snapshot", since_done)
    assert increment.since_export == export_id, increment.since_export
    assert isinstance(increment.counters, dict), increment.counters
    assert increment.counters.get("task_number") == 0, increment.counters
    assert increment.counters.get("deleted_task_ids_count") == 0, increment.counters
    deleted = api_projects_exports_download_retrieve.sync(
        project_id, since_id, client=api, export_type=ApiProjectsExportsDownloadRetrieveExportType.DELETED_IDS
    )
    assert json.loads(_ok(deleted, File, "download DELETED_IDS").payload.read()) == []
    refused = api_projects_exports_create.sync(
        project_id, client=api, body=ExportCreateRequest(since_export=999_999_999)
    )
    assert isinstance(refused, Error), refused
    assert refused.status_code == 400, refused

    # Duplicate and validate.
    copy = api_projects_duplicate_create.sync(
        project_id, client=api, body=ProjectDuplicateRequest(mode=ModeEnum.SETTINGSDATA, title="Generated copy")
    )
    copy_id = _ok(copy, ProjectDuplicateResponse, "duplicate").id
    assert isinstance(copy_id, int)
    assert copy_id != project_id
    valid = api_projects_validate_label_config.sync(
        project_id, client=api, body=ProjectLabelConfigRequest(label_config=LABEL_CONFIG)
    )
    _ok(valid, ProjectLabelConfigValidation, "validate (project)")
    response = api_projects_validate_create.sync_detailed(
        client=api, body=ProjectLabelConfigRequest(label_config=LABEL_CONFIG)
    )
    assert response.status_code == 204, f"validate: {response.status_code}"
    invalid = api_projects_validate_create.sync(client=api, body=ProjectLabelConfigRequest(label_config="<View>"))
    assert isinstance(invalid, Error), invalid
    assert invalid.status_code == 400, invalid

    # Personal access tokens: create, list, refresh for an access token that works, rotate, blacklist.
    personal = _ok(api_token_create.sync(client=api), LSAPITokenCreate, "token create")
    refresh = personal.token
    assert isinstance(refresh, str)
    tokens = api_token_list.sync(client=api)
    assert isinstance(tokens, list), tokens
    assert len(tokens) >= 1, tokens
    anonymous = Client(base_url=base_url, timeout=timeout)
    access = api_token_refresh_create.sync(client=anonymous, body=TokenRefreshRequest(refresh=refresh))
    access_token = _ok(access, TokenRefreshResponse, "token refresh").access
    bearer = AuthenticatedClient(base_url=base_url, token=access_token, prefix="Bearer", timeout=timeout)
    assert isinstance(api_projects_retrieve.sync(project_id, client=bearer), Project), "bearer access"
    rotated = api_token_rotate_create.sync(client=api, body=LSAPITokenRotateRequest(refresh=refresh))
    new_refresh = _ok(rotated, TokenRotateResponse, "token rotate").refresh
    assert isinstance(new_refresh, str)
    assert new_refresh != refresh
    blacklisted = api_token_blacklist_create.sync_detailed(
        client=api, body=LSAPITokenBlacklistRequest(refresh=new_refresh)
    )
    assert blacklisted.status_code == 204, f"token blacklist: {blacklisted.status_code}"
    refused = api_token_refresh_create.sync(client=anonymous, body=TokenRefreshRequest(refresh=new_refresh))
    assert isinstance(refused, Error), refused
    assert refused.status_code == 401, refused

    # A 404 parsed as the error model, naming what is missing.
    missing = api_projects_exports_retrieve.sync(project_id, 999_999_999, client=api)
    assert isinstance(missing, Error), missing
    assert missing.status_code == 404, missing
    assert missing.detail == "No Export matches the given query.", missing.detail
    no_project = api_projects_exports_retrieve.sync(999_999_999, export_id, client=api)
    assert isinstance(no_project, Error), no_project
    assert no_project.detail == "No Project matches the given query.", no_project

    return {"projects_before": before, "project": project_id, "copy": copy_id, "export": export_id, "md5": done.md5}
