"""POST /api/projects/{id}/validate/ and POST /api/projects/validate/, and the same checks on PATCH."""

import pytest
from django.urls import reverse

from projects.label_config import LabelConfigError, UsedTags, check_compatible, parse_label_config
from projects.models import Project
from projects.selectors import project_used_tags
from projects.services import tasks_import
from tests.factories import IMAGE_CONFIG, choice, fill_project, make_project, rectangle

pytestmark = pytest.mark.django_db

GENERAL = reverse("label-config-validate")
ERROR_KEYS = {"id", "status_code", "version", "detail", "exc_info"}

WITHOUT_CAR = IMAGE_CONFIG.replace('<Label value="Car"/>', "")
WITH_TRUCK = IMAGE_CONFIG.replace('<Label value="Person"/>', '<Label value="Person"/><Label value="Truck"/>')
WITH_COMMENT = IMAGE_CONFIG.replace("</View>", '<TextArea name="comment" toName="image"/></View>')
UNKNOWN_TARGET = (
    '<View><Image name="image" value="$image"/><RectangleLabels name="label" toName="nonexistent">'
    '<Label value="Car"/></RectangleLabels></View>'
)
BROKEN = '<View><Image name="image" value="$image"></View'
NO_CONTROLS = '<View><Image name="image" value="$image"/></View>'


def validate_url(project) -> str:
    return reverse("project-label-config-validate", kwargs={"pk": project.pk})


def detail(project) -> str:
    return reverse("project-detail", kwargs={"pk": project.pk})


@pytest.fixture
def project(user):
    return make_project(user=user)


@pytest.fixture
def labeled(project, user):
    """Two tasks whose annotations use Car, Person and Good (see tests.factories.task_payload)."""
    fill_project(project, user=user, count=2)
    return project


# Project validate ---------------------------------------------------------------------------------------------


def test_same_config_is_valid_and_unchanged(api_client, labeled):
    response = api_client.post(validate_url(labeled), {"label_config": IMAGE_CONFIG}, format="json")
    assert response.status_code == 200
    assert response.json() == {"config_essential_data_has_changed": False}


def test_added_label_is_not_an_essential_change(api_client, labeled):
    """As Label Studio (recording 34): new labels keep what exists."""
    response = api_client.post(validate_url(labeled), {"label_config": WITH_TRUCK}, format="json")
    assert response.status_code == 200
    assert response.json() == {"config_essential_data_has_changed": False}


def test_added_control_is_an_essential_change(api_client, labeled):
    response = api_client.post(validate_url(labeled), {"label_config": WITH_COMMENT}, format="json")
    assert response.status_code == 200
    assert response.json() == {"config_essential_data_has_changed": True}
    # Only checked: nothing is saved.
    labeled.refresh_from_db()
    assert labeled.label_config == IMAGE_CONFIG


def test_dropping_an_unused_label_is_allowed_and_essential(api_client, project):
    """Without annotations any label may go; dropping one still changes the essentials."""
    response = api_client.post(validate_url(project), {"label_config": WITHOUT_CAR}, format="json")
    assert response.status_code == 200
    assert response.json() == {"config_essential_data_has_changed": True}


def test_dropping_a_used_label_is_refused_naming_it(api_client, labeled):
    response = api_client.post(validate_url(labeled), {"label_config": WITHOUT_CAR}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert set(body) == ERROR_KEYS | {"validation_errors"}
    assert body["validation_errors"] == {
        "non_field_errors": [
            "These labels still exist in annotations or drafts:\n"
            "Car (2 annotations)\n"
            'Please add labels to tag with name="label".'
        ]
    }


def test_labels_used_only_in_drafts_count_too(api_client, project, user):
    draft = {"result": [rectangle("Car")], "lead_time": 1.0}
    tasks_import(project=project, user=user, payload=[{"data": {"image": "x.jpg"}, "drafts": [draft, draft]}])
    response = api_client.post(validate_url(project), {"label_config": WITHOUT_CAR}, format="json")
    assert response.status_code == 400
    assert "Car (2 drafts)" in response.json()["validation_errors"]["non_field_errors"][0]


def test_annotations_and_drafts_are_both_counted(api_client, project, user):
    draft = {"result": [rectangle("Car")], "lead_time": 1.0}
    annotation = {"result": [rectangle("Car"), rectangle("Car", region="r2")]}
    task = {"data": {"image": "x.jpg"}, "annotations": [annotation], "drafts": [draft]}
    tasks_import(project=project, user=user, payload=[task])
    message = api_client.post(validate_url(project), {"label_config": WITHOUT_CAR}, format="json").json()
    assert "Car (2 annotations, 1 draft)" in message["validation_errors"]["non_field_errors"][0]


def test_removed_control_is_refused(api_client, labeled):
    without_choices = IMAGE_CONFIG.split("  <Choices")[0] + "</View>"
    response = api_client.post(validate_url(labeled), {"label_config": without_choices}, format="json")
    assert response.status_code == 400
    assert response.json()["validation_errors"]["non_field_errors"] == [
        "Created annotations are incompatible with provided labeling schema, we found:\n"
        "2 with from_name=quality, to_name=image, type=choices"
    ]


def test_config_without_controls_is_refused_when_annotations_exist(api_client, labeled, project):
    response = api_client.post(validate_url(labeled), {"label_config": NO_CONTROLS}, format="json")
    assert response.status_code == 400
    message = response.json()["validation_errors"]["non_field_errors"][0]
    assert "from_name=label, to_name=image, type=rectanglelabels" in message
    assert "from_name=quality, to_name=image, type=choices" in message


def test_config_without_controls_is_fine_without_annotations(api_client, project):
    response = api_client.post(validate_url(project), {"label_config": NO_CONTROLS}, format="json")
    assert response.status_code == 200


def test_unknown_to_name_is_a_non_field_error(api_client, project):
    response = api_client.post(validate_url(project), {"label_config": UNKNOWN_TARGET}, format="json")
    assert response.status_code == 400
    assert response.json()["validation_errors"] == {
        "non_field_errors": ["toName=\"nonexistent\" not found in names: ['image', 'label']"]
    }


def test_broken_xml_is_a_400_with_the_parser_message_as_detail(api_client, project):
    """As Label Studio: malformed XML answers the parser's message in `detail`, without validation_errors."""
    response = api_client.post(validate_url(project), {"label_config": BROKEN}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert set(body) == ERROR_KEYS
    assert body["detail"] == "unclosed token: line 1, column 41"


@pytest.mark.parametrize("body", [{}, {"label_config": ""}, {"label_config": None}, []])
def test_missing_config(api_client, project, body):
    response = api_client.post(validate_url(project), body, format="json")
    assert response.status_code == 400
    assert response.json()["validation_errors"] == {"non_field_errors": ["Label config is not set or is empty"]}


def test_non_string_config_is_a_400(api_client, project):
    response = api_client.post(validate_url(project), {"label_config": 12}, format="json")
    assert response.status_code == 400
    assert response.json()["validation_errors"] == {"non_field_errors": ["Label config must be a string"]}


def test_form_body_is_accepted(api_client, labeled):
    response = api_client.post(validate_url(labeled), {"label_config": WITH_COMMENT})
    assert response.status_code == 200
    assert response.json() == {"config_essential_data_has_changed": True}


def test_other_organization_gets_404(other_client, labeled):
    response = other_client.post(validate_url(labeled), {"label_config": IMAGE_CONFIG}, format="json")
    assert response.status_code == 404
    assert response.json()["detail"] == "No Project matches the given query."


def test_unauthenticated_gets_401(client, project):
    assert client.post(validate_url(project), {"label_config": IMAGE_CONFIG}).status_code == 401
    assert client.post(GENERAL, {"label_config": IMAGE_CONFIG}).status_code == 401


def test_query_count_does_not_grow_with_annotations(api_client, user, django_assert_num_queries):
    for count in (1, 6):
        project = make_project(user=user, title=f"P{count}")
        fill_project(project, user=user, count=count)
        # auth token, project, annotation results, draft results
        with django_assert_num_queries(4):
            response = api_client.post(validate_url(project), {"label_config": WITHOUT_CAR}, format="json")
        assert f"Car ({count} annotation" in response.json()["validation_errors"]["non_field_errors"][0]


# PATCH applies the same check -----------------------------------------------------------------------------------


def test_patch_dropping_a_used_label_is_refused_and_changes_nothing(api_client, labeled):
    response = api_client.patch(detail(labeled), {"label_config": WITHOUT_CAR, "title": "New"}, format="json")
    assert response.status_code == 400
    assert response.json()["validation_errors"] == {
        "label_config": [
            "These labels still exist in annotations or drafts:\n"
            "Car (2 annotations)\n"
            'Please add labels to tag with name="label".'
        ]
    }
    labeled.refresh_from_db()
    assert (labeled.label_config, labeled.title) == (IMAGE_CONFIG, "Project")


def test_patch_adding_a_label_is_saved_with_its_weight(api_client, labeled):
    response = api_client.patch(detail(labeled), {"label_config": WITH_TRUCK}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert body["parsed_label_config"]["label"]["labels"] == ["Car", "Person", "Truck"]
    assert body["control_weights"]["label"]["labels"]["Truck"] == 1.0
    assert Project.objects.get(pk=labeled.pk).label_config == WITH_TRUCK


def test_patch_dropping_an_unused_label_is_saved(api_client, project):
    response = api_client.patch(detail(project), {"label_config": WITHOUT_CAR}, format="json")
    assert response.status_code == 200
    assert response.json()["parsed_label_config"]["label"]["labels"] == ["Person"]


# General validate -----------------------------------------------------------------------------------------------


def test_general_valid_config_is_204(api_client):
    response = api_client.post(GENERAL, {"label_config": IMAGE_CONFIG}, format="json")
    assert response.status_code == 204
    assert response.content == b""


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"label_config": UNKNOWN_TARGET}, "toName=\"nonexistent\" not found in names: ['image', 'label']"),
        ({"label_config": BROKEN}, "unclosed token: line 1, column 41"),
        ({}, "This field is required."),
        ({"label_config": ""}, "This field may not be blank."),
    ],
)
def test_general_invalid_config_is_a_400_on_label_config(api_client, body, message):
    response = api_client.post(GENERAL, body, format="json")
    assert response.status_code == 400
    assert response.json()["validation_errors"] == {"label_config": [message]}


def test_general_does_not_look_at_any_project(api_client, labeled):
    """Without a project there is nothing to stay compatible with."""
    assert api_client.post(GENERAL, {"label_config": NO_CONTROLS}, format="json").status_code == 204


# The pieces ----------------------------------------------------------------------------------------------------


def test_used_tags_read_results_and_labels(project, user):
    payload = [
        {
            "data": {"image": "a.jpg"},
            "annotations": [
                {"result": [rectangle("Car"), rectangle("Person", region="r2"), choice("Bad")]},
                {"result": [rectangle("Car"), {"type": "relation", "from_id": "r1", "to_id": "r2"}]},
                {"result": [], "was_cancelled": True},
            ],
            "drafts": [{"result": [choice("Good")]}],
        }
    ]
    tasks_import(project=project, user=user, payload=payload)
    used = project_used_tags(project=project)
    assert used.results == {("label", "image", "rectanglelabels"): 3, ("quality", "image", "choices"): 1}
    assert used.labels == {"label": {"Car": 2, "Person": 1}, "quality": {"Bad": 1}}
    assert used.draft_labels == {"quality": {"Good": 1}}


def test_check_compatible_special_cases():
    video = parse_label_config(
        '<View><Video name="video" value="$video"/><VideoRectangle name="box" toName="video"/>'
        '<Labels name="videoLabels" toName="video"><Label value="Man"/></Labels></View>'
    )
    used = UsedTags(results={("box", "video", "videorectangle"): 1}, labels={"box": {"Man": 1}})
    check_compatible(video, used)  # VideoRectangle results carry the labels of the Labels control

    dynamic = parse_label_config('<View><Text name="t" value="$t"/><Labels name="l" toName="t" value="$opts"/></View>')
    check_compatible(dynamic, UsedTags(results={("l", "t", "labels"): 1}, labels={"l": {"anything": 1}}))

    text = parse_label_config('<View><Text name="t" value="$t"/></View>')
    check_compatible(text, UsedTags(results={("answer", "t", "textarea"): 1}))  # free text needs no control

    repeater = parse_label_config(
        '<View><Repeater on="$images" indexFlag="{{idx}}"><Image name="image_{{idx}}" value="$images[{{idx}}].url"/>'
        '<Choices name="choice_{{idx}}" toName="image_{{idx}}"><Choice value="A"/></Choices></Repeater></View>'
    )
    results = {("choice_0", "image_0", "choices"): 1}
    check_compatible(repeater, UsedTags(results=results, labels={"choice_0": {"A": 1}}))
    with pytest.raises(LabelConfigError, match=r'B \(1 annotation\)\nPlease add labels to tag with name="choice_'):
        check_compatible(repeater, UsedTags(results=results, labels={"choice_0": {"B": 1}}))
