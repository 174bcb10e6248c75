"""`ls.projects` methods of label-studio-sdk 2.1.2 (spec/SDK.md §2) against a live server, in both auth modes."""

import itertools
import json

import pytest
from label_studio_sdk import PredictionRequest
from label_studio_sdk.core.api_error import ApiError

from tests.factories import IMAGE_CONFIG, make_org, make_user, rectangle
from tests.sdk.conftest import sdk_for
from tests.sdk.helpers import NO_RETRIES, annotation, create_project, import_tasks, listed_projects, task

pytestmark = pytest.mark.django_db(transaction=True)


def test_project_create_and_get(ls):
    created = ls.projects.create(title="Cars and people", label_config=IMAGE_CONFIG, description="from the SDK")

    assert isinstance(created.id, int)
    assert created.title == "Cars and people"
    assert created.label_config == IMAGE_CONFIG
    assert created.description == "from the SDK"

    fetched = ls.projects.get(id=created.id)
    assert fetched.id == created.id
    assert fetched.title == "Cars and people"
    assert fetched.label_config == IMAGE_CONFIG
    assert fetched.task_number == 0
    assert fetched.get_label_interface() is not None


def test_project_create_with_invalid_config_is_400(ls):
    with pytest.raises(ApiError) as caught:
        ls.projects.create(title="Broken", label_config="<View><Image name=")

    assert caught.value.status_code == 400
    assert "label_config" in caught.value.body["validation_errors"]
    assert listed_projects(ls) == []


def test_project_update_persists_title_and_keeps_label_config(ls):
    project = create_project(ls, "Before")

    updated = ls.projects.update(id=project.id, title="After")

    assert updated.id == project.id
    assert updated.title == "After"
    assert updated.label_config == IMAGE_CONFIG
    fetched = ls.projects.get(id=project.id)
    assert fetched.title == "After"
    assert fetched.label_config == IMAGE_CONFIG


def test_project_delete_then_get_is_404(ls):
    project = create_project(ls)

    assert ls.projects.delete(id=project.id) is None

    with pytest.raises(ApiError) as caught:
        ls.projects.get(id=project.id)
    assert caught.value.status_code == 404
    assert isinstance(caught.value.body, dict)
    assert caught.value.body["status_code"] == 404
    assert project.id not in [p.id for p in listed_projects(ls)]


def test_project_list_pager_walks_every_page_once_and_stops(ls):
    ids = [create_project(ls, f"Paged {n}").id for n in range(5)]

    pager = ls.projects.list(page_size=2)
    seen = [project.id for project in itertools.islice(pager, 50)]  # a pager that never stops would reach 50

    assert pager.response.count == 5
    assert len(pager.items) == 2
    assert sorted(seen) == sorted(ids)
    assert len(seen) == len(set(seen)) == 5
    titles = {project.title for project in listed_projects(ls, page_size=2)}
    assert titles == {f"Paged {n}" for n in range(5)}
    last = ls.projects.list(page=3, page_size=2)
    assert [project.id for project in last.items] == [min(ids)]  # newest first: the oldest is alone on page 3
    assert last.response.next is None
    with pytest.raises(ApiError) as caught:  # past the last page: how Label Studio ends the walk
        ls.projects.list(page=4, page_size=2)
    assert caught.value.status_code == 404
    assert caught.value.body["detail"] == "Invalid page."


def test_project_list_pager_ends_on_empty_first_page(ls):
    assert listed_projects(ls) == []


def test_project_list_filters_by_title_and_orders(ls):
    for title in ("Beta", "Alpha", "Gamma"):
        create_project(ls, title)

    assert [p.title for p in listed_projects(ls, ordering="title")] == ["Alpha", "Beta", "Gamma"]
    assert [p.title for p in listed_projects(ls, ordering="-title")] == ["Gamma", "Beta", "Alpha"]
    assert [p.title for p in listed_projects(ls, title="amm")] == ["Gamma"]


def test_project_list_counts(ls):
    empty = create_project(ls, "Empty")
    full = create_project(ls, "Full")
    tasks = [task(0), task(1, annotations=[annotation(cancelled=True)]), task(2, annotations=[])]
    import_tasks(ls, full.id, tasks)

    response = ls.projects.list_counts()

    assert response.count == 2
    counts = {item.id: item for item in response.results}
    assert set(counts) == {empty.id, full.id}
    assert counts[empty.id].task_number == 0
    assert counts[full.id].task_number == 3
    assert counts[full.id].total_annotations_number == 1
    assert counts[full.id].skipped_annotations_number == 1
    assert counts[full.id].total_predictions_number == 3
    assert counts[full.id].num_tasks_with_annotations == 1


def test_project_list_and_get_stay_inside_the_organization(ls, live_server, auth_mode):
    mine = create_project(ls, "Mine")
    other_user = make_user(email="other@example.com", organization=make_org(title="Other"))
    other = sdk_for(live_server.url, other_user, auth_mode)
    theirs = create_project(other, "Theirs")

    assert [p.id for p in listed_projects(ls)] == [mine.id]
    assert [p.id for p in listed_projects(other)] == [theirs.id]
    with pytest.raises(ApiError) as caught:
        ls.projects.get(id=theirs.id)
    assert caught.value.status_code == 404
    with pytest.raises(ApiError) as caught:
        ls.projects.exports.list(id=theirs.id)
    assert caught.value.status_code == 404
    with pytest.raises(ApiError) as caught:
        ls.projects.list_unique_annotators(id=theirs.id)
    assert caught.value.status_code == 404


def test_list_unique_annotators(ls, live_server, sdk_user, auth_mode):
    project = create_project(ls)
    assert ls.projects.list_unique_annotators(id=project.id) == []

    import_tasks(ls, project.id, [task(0), task(1)])
    annotators = ls.projects.list_unique_annotators(id=project.id)

    assert [user.id for user in annotators] == [sdk_user.pk]
    assert annotators[0].email == "sdk.user@example.com"
    assert annotators[0].first_name == "Sdk"


@pytest.mark.parametrize(("mode", "tasks"), [("settings", 0), ("settings,data", 2)])
def test_duplicate(ls, mode, tasks):
    project = ls.projects.create(title="Original", label_config=IMAGE_CONFIG, description="keep me")
    import_tasks(ls, project.id, [task(0), task(1)])

    duplicated = ls.projects.duplicate(id=project.id, mode=mode, title="Copy", workspace=1)

    assert isinstance(duplicated.id, int)
    assert duplicated.id != project.id
    copy = ls.projects.get(id=duplicated.id)
    assert copy.title == "Copy"
    assert copy.label_config == IMAGE_CONFIG
    assert copy.description == "keep me"
    assert copy.task_number == tasks
    assert ls.projects.get(id=project.id).task_number == 2  # the original is untouched
    assert {p.id for p in listed_projects(ls)} == {project.id, duplicated.id}


def test_duplicate_with_invalid_mode_is_400(ls):
    project = create_project(ls)

    with pytest.raises(ApiError) as caught:
        ls.projects.duplicate(id=project.id, mode="everything", title="Copy", workspace=1)

    assert caught.value.status_code == 400
    assert "mode" in caught.value.body["validation_errors"]


def test_validate_label_config(ls):
    project = create_project(ls)
    import_tasks(ls, project.id, [task(0)])

    valid = ls.projects.validate_label_config(id=project.id, label_config=IMAGE_CONFIG)

    assert valid.model_extra["config_essential_data_has_changed"] is False
    control = '<Choices name="weather" toName="image"><Choice value="Sun"/></Choices>'
    with_control = IMAGE_CONFIG.replace("</View>", f"{control}</View>")
    changed = ls.projects.validate_label_config(id=project.id, label_config=with_control)
    assert changed.model_extra["config_essential_data_has_changed"] is True
    with pytest.raises(ApiError) as caught:
        ls.projects.validate_label_config(id=project.id, label_config="<View><Image name=")
    assert caught.value.status_code == 400
    assert caught.value.body["status_code"] == 400
    assert caught.value.body["detail"]
    with pytest.raises(ApiError) as caught:  # drops the "Car" label, which an annotation uses
        ls.projects.validate_label_config(id=project.id, label_config=IMAGE_CONFIG.replace('<Label value="Car"/>', ""))
    assert caught.value.status_code == 400
    assert "Car" in json.dumps(caught.value.body)
    assert ls.projects.get(id=project.id).label_config == IMAGE_CONFIG  # validation never saves


# --- import -----------------------------------------------------------------------------------------------


def test_import_tasks_counts_and_task_number(ls):
    project = create_project(ls)
    tasks = [
        task(0),
        task(1, annotations=[annotation(cancelled=True)]),
        task(2, annotations=[annotation(), annotation(ground_truth=True)]),
        task(3, annotations=[]),
    ]

    result = ls.projects.import_tasks(id=project.id, request=tasks, return_task_ids=True)

    assert result.task_count == 4
    assert result.annotation_count == 4
    assert result.predictions_count == 4
    task_ids = (result.model_extra or {}).get("task_ids")
    assert isinstance(task_ids, list)
    assert len(task_ids) == len(set(task_ids)) == 4
    assert all(isinstance(task_id, int) for task_id in task_ids)

    fetched = ls.projects.get(id=project.id)
    assert fetched.task_number == 4
    assert fetched.total_predictions_number == 4
    assert fetched.total_annotations_number == 3  # the cancelled one is not counted
    assert fetched.skipped_annotations_number == 1


def test_import_tasks_without_return_task_ids_omits_them(ls):
    project = create_project(ls)

    result = ls.projects.import_tasks(id=project.id, request=[task(0), task(1)])

    assert result.task_count == 2
    assert "task_ids" not in (result.model_extra or {})
    assert ls.projects.get(id=project.id).task_number == 2


def test_import_tasks_missing_data_key_is_400_and_imports_nothing(ls):
    project = create_project(ls)

    with pytest.raises(ApiError) as caught:
        ls.projects.import_tasks(id=project.id, request=[task(0), {"data": {"text": "no image"}}])

    assert caught.value.status_code == 400
    assert isinstance(caught.value.body, dict)
    assert "image" in json.dumps(caught.value.body["validation_errors"])
    assert ls.projects.get(id=project.id).task_number == 0


def test_import_predictions(ls):
    project = create_project(ls)
    task_ids = import_tasks(ls, project.id, [task(0, annotations=[]), task(1, annotations=[])]).model_extra["task_ids"]

    result = ls.projects.import_predictions(
        id=project.id,
        request=[
            PredictionRequest(task=task_ids[0], result=[rectangle("Car", 1.0)], score=0.25, model_version="v2"),
            {"task": task_ids[1], "result": [rectangle("Person", 2.0)], "score": 0.75, "model_version": "v2"},
        ],
    )

    assert result.created == 2
    assert ls.projects.get(id=project.id).total_predictions_number == 4  # one imported with each task, plus these
    with pytest.raises(ApiError) as caught:
        ls.projects.import_predictions(
            id=project.id, request=[{"task": 987654, "result": [], "model_version": "v2"}], request_options=NO_RETRIES
        )
    assert caught.value.status_code == 400
    assert ls.projects.get(id=project.id).total_predictions_number == 4


def test_unknown_project_is_404_json(ls):
    for call in (
        lambda: ls.projects.get(id=987654, request_options=NO_RETRIES),
        lambda: ls.projects.update(id=987654, title="x"),
        lambda: ls.projects.delete(id=987654),
        lambda: ls.projects.import_tasks(id=987654, request=[task(0)]),
        lambda: ls.projects.list_unique_annotators(id=987654),
        lambda: ls.projects.duplicate(id=987654, mode="settings", title="x", workspace=1),
        lambda: ls.projects.validate_label_config(id=987654, label_config=IMAGE_CONFIG),
    ):
        with pytest.raises(ApiError) as caught:
            call()
        assert caught.value.status_code == 404
        assert isinstance(caught.value.body, dict)
        assert caught.value.body["status_code"] == 404
        assert caught.value.body["detail"]
