"""GET /api/projects/{id}/export/formats, and which formats a label config enables (label-studio-sdk's rules)."""

import pytest
from django.urls import reverse
from label_studio_sdk.converter import Converter

from exports.converters.availability import enabled_format_names, format_choices
from exports.converters.registry import FORMATS
from projects.label_config import parse_label_config
from tests.factories import IMAGE_CONFIG, make_project

NAMES = [fmt.name for fmt in FORMATS]
# Formats of the service's own, enabled for every config and listed after Label Studio's.
OURS = ["JSONL"]

CONFIGS = {
    "image boxes and choices": IMAGE_CONFIG,
    "image polygons": """<View><Image name="img" value="$image"/>
        <PolygonLabels name="poly" toName="img"><Label value="Road"/></PolygonLabels></View>""",
    "image keypoints only": """<View><Image name="img" value="$image"/>
        <KeyPointLabels name="kp" toName="img"><Label value="Nose"/></KeyPointLabels></View>""",
    "image keypoints and boxes": """<View><Image name="img" value="$image"/>
        <KeyPointLabels name="kp" toName="img"><Label value="Nose"/></KeyPointLabels>
        <RectangleLabels name="box" toName="img"><Label value="Face"/></RectangleLabels></View>""",
    "image rectangle with labels": """<View><Image name="img" value="$image"/>
        <Rectangle name="rect" toName="img"/><Labels name="lab" toName="img"><Label value="A"/></Labels></View>""",
    "image polygon with labels": """<View><Image name="img" value="$image"/>
        <Polygon name="poly" toName="img"/><Labels name="lab" toName="img"><Label value="A"/></Labels></View>""",
    "image brush": """<View><Image name="img" value="$image"/>
        <BrushLabels name="brush" toName="img"><Label value="Sky"/></BrushLabels></View>""",
    "image brush with labels": """<View><Image name="img" value="$image"/>
        <Brush name="brush" toName="img"/><Labels name="lab" toName="img"><Label value="Sky"/></Labels></View>""",
    "image choices only": """<View><Image name="img" value="$image"/>
        <Choices name="c" toName="img"><Choice value="Cat"/><Choice value="Dog"/></Choices></View>""",
    "multi-image grid": """<View><Image name="img" valueList="$images"/>
        <RectangleLabels name="box" toName="img"><Label value="Car"/></RectangleLabels></View>""",
    "ner text": """<View><Text name="text" value="$text"/>
        <Labels name="ner" toName="text"><Label value="PER"/><Label value="ORG"/></Labels></View>""",
    "ner text from a url": """<View><Text name="text" value="$text" valueType="url"/>
        <Labels name="ner" toName="text"><Label value="PER"/></Labels></View>""",
    "ner hypertext": """<View><HyperText name="html" value="$html"/>
        <Labels name="ner" toName="html"><Label value="PER"/></Labels></View>""",
    "text classification": """<View><Text name="text" value="$text"/>
        <Choices name="sentiment" toName="text"><Choice value="Positive"/><Choice value="Negative"/>
        </Choices></View>""",
    "text taxonomy": """<View><Text name="text" value="$text"/>
        <Taxonomy name="tax" toName="text"><Choice value="A"/></Taxonomy></View>""",
    "text transcription (doclang)": """<View><Text name="text" value="$text"/>
        <TextArea name="summary" toName="text"/></View>""",
    "audio transcription": """<View><Audio name="audio" value="$audio"/>
        <TextArea name="transcription" toName="audio"/></View>""",
    "audioplus transcription": """<View><AudioPlus name="audio" value="$audio"/>
        <TextArea name="transcription" toName="audio"/></View>""",
    "audio segments": """<View><Audio name="audio" value="$audio"/>
        <Labels name="seg" toName="audio"><Label value="Speech"/></Labels></View>""",
    "video timeline": """<View><Video name="video" value="$video"/>
        <TimelineLabels name="tl" toName="video"><Label value="Run"/></TimelineLabels></View>""",
    "video boxes": """<View><Video name="video" value="$video"/>
        <VideoRectangle name="box" toName="video"/>
        <Labels name="lab" toName="video"><Label value="Car"/></Labels></View>""",
    "paragraphs": """<View><Paragraphs name="dialogue" value="$dialogue" layout="dialogue"/>
        <ParagraphLabels name="pl" toName="dialogue"><Label value="Greeting"/></ParagraphLabels></View>""",
    "two data keys": """<View><Image name="img" value="$image"/><Text name="caption" value="$caption"/>
        <RectangleLabels name="box" toName="img"><Label value="Car"/></RectangleLabels>
        <Choices name="c" toName="caption"><Choice value="Ok"/></Choices></View>""",
    "two data keys with a text area": """<View><Image name="img" value="$image"/><Text name="t" value="$text"/>
        <TextArea name="note" toName="img,t"/></View>""",
    "one key written two ways": """<View><Text name="a" value="$text"/><Header name="h" value="Title: $text"/>
        <Labels name="ner" toName="a,h"><Label value="PER"/></Labels></View>""",
    "no controls": """<View><Text name="text" value="$text"/></View>""",
    "empty view": "<View></View>",
    "ranker": """<View><List name="items" value="$items" title="Items"/>
        <Ranker name="rank" toName="items"/></View>""",
}


# Recording 39-export-formats.json, in its order: the image project's enabled formats, then the disabled ones.
RECORDED_IMAGE_ORDER = [
    "JSON",
    "JSON_MIN",
    "CSV",
    "TSV",
    "COCO",
    "COCO_WITH_IMAGES",
    "VOC",
    "YOLO",
    "YOLO_WITH_IMAGES",
    "YOLO_OBB",
    "YOLO_OBB_WITH_IMAGES",
    "CONLL2003",
    "BRUSH_TO_NUMPY",
    "BRUSH_TO_PNG",
    "ASR_MANIFEST",
    "BRUSH_TO_COCO",
    "DOCLANG",
]


def sdk_supported(schema: dict) -> set[str]:
    """What Label Studio asks the SDK (CSV_OLD is a format Label Studio never lists)."""
    return set(Converter(config=schema, project_dir=None).supported_formats) - {"CSV_OLD"}


def label_studio_formats(schema: dict) -> list[dict]:
    """Label Studio 1.23.2's `DataExport.get_export_formats`, run on the SDK it ships with."""
    converter = Converter(config=schema, project_dir=None)
    supported = set(converter.supported_formats)
    formats = []
    for fmt, info in converter.all_formats().items():
        item = {"name": fmt.name, "tags": info.get("tags")}
        if fmt.name not in supported:
            item["disabled"] = True
        formats.append(item)
    return sorted(formats, key=lambda f: f.get("disabled", False))


def formats_url(project) -> str:
    return reverse("project-export-formats", kwargs={"pk": project.pk})


@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
def test_enabled_formats_are_the_sdks(config):
    schema = parse_label_config(config)
    assert enabled_format_names(schema) == sdk_supported(schema) | set(OURS)


@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
def test_formats_list_matches_label_studios(config):
    """Names, order, tags and `disabled` as Label Studio lists them; titles and descriptions are the service's own."""
    schema = parse_label_config(config)
    ours = [
        {"name": item["name"], "tags": item.get("tags"), **({"disabled": True} if item.get("disabled") else {})}
        for item in format_choices(schema)
        if item["name"] not in OURS
    ]
    assert ours == label_studio_formats(schema)


@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
def test_jsonl_is_enabled_for_every_config_after_label_studios_enabled_formats(config):
    names = [(item["name"], item.get("disabled", False)) for item in format_choices(parse_label_config(config))]
    enabled = [name for name, disabled in names if not disabled]
    assert enabled[-1] == "JSONL"
    assert enabled[0] == "JSON"  # still Label Studio's default, the first entry


def test_a_config_the_sdk_cannot_handle_still_gets_an_answer():
    """Keypoints on a text object make the SDK remove COCO twice and raise; no COCO or YOLO here."""
    schema = parse_label_config(
        """<View><Text name="text" value="$text"/>
        <KeyPointLabels name="kp" toName="text"><Label value="A"/></KeyPointLabels></View>"""
    )
    with pytest.raises(ValueError, match="not in list"):
        sdk_supported(schema)
    assert enabled_format_names(schema) == {"JSON", "JSON_MIN", "CSV", "TSV", "JSONL"}


def test_unreadable_config_counts_as_no_controls():
    assert enabled_format_names({}) == {"JSON", "JSON_MIN", "CSV", "TSV", "JSONL"}


@pytest.mark.django_db
class TestFormatsAPI:
    def test_image_config_lists_what_label_studio_recorded(self, api_client, user):
        """Recording 39-export-formats.json: an image project with boxes and choices."""
        project = make_project(user=user)
        response = api_client.get(formats_url(project))
        assert response.status_code == 200
        body = response.json()
        assert [item["name"] for item in body if item["name"] not in OURS] == RECORDED_IMAGE_ORDER
        assert [item["name"] for item in body if item.get("disabled")] == RECORDED_IMAGE_ORDER[-6:]
        assert [item["name"] for item in body].index("JSONL") == len(RECORDED_IMAGE_ORDER) - 6
        by_name = {item["name"]: item for item in body}
        assert set(by_name["JSON"]) == {"name", "title", "description"}
        assert set(by_name["COCO"]) == {"name", "title", "description", "tags"}
        assert by_name["COCO"]["tags"] == ["image segmentation", "object detection", "keypoints"]
        assert set(by_name["DOCLANG"]) == {"name", "title", "description", "tags", "disabled"}
        assert by_name["DOCLANG"]["disabled"] is True
        assert all(isinstance(item["title"], str) and item["description"] for item in body)

    def test_enabled_first_then_registry_order(self, api_client, user):
        project = make_project(user=user, label_config=CONFIGS["ner text"])
        body = api_client.get(formats_url(project)).json()
        enabled = [item["name"] for item in body if not item.get("disabled")]
        disabled = [item["name"] for item in body if item.get("disabled")]
        assert enabled == ["JSON", "JSON_MIN", "CSV", "TSV", "CONLL2003", "JSONL"]
        assert disabled == [name for name in NAMES if name not in enabled]
        assert [item["name"] for item in body] == enabled + disabled

    def test_follows_the_current_config(self, api_client, user):
        project = make_project(user=user)
        project.label_config = CONFIGS["audio transcription"]
        project.save(update_fields=["label_config"])
        body = api_client.get(formats_url(project)).json()
        assert "ASR_MANIFEST" in [item["name"] for item in body if not item.get("disabled")]

    def test_trailing_slash_answers_the_same(self, api_client, user):
        project = make_project(user=user)
        plain = api_client.get(formats_url(project))
        slashed = api_client.get(formats_url(project) + "/")
        assert slashed.status_code == 200
        assert slashed.json() == plain.json()

    def test_other_organizations_project_is_404(self, other_client, user):
        project = make_project(user=user)
        response = other_client.get(formats_url(project))
        assert response.status_code == 404
        assert response.json()["status_code"] == 404

    def test_unknown_project_is_404_json(self, api_client):
        response = api_client.get(reverse("project-export-formats", kwargs={"pk": 999999}))
        assert response.status_code == 404
        assert response["Content-Type"] == "application/json"

    def test_needs_authentication(self, client, user):
        project = make_project(user=user)
        assert client.get(formats_url(project)).status_code == 401

    def test_two_queries(self, api_client, user, django_assert_num_queries):
        """The token with its user, and the project's label config."""
        project = make_project(user=user)
        with django_assert_num_queries(2):
            assert api_client.get(formats_url(project)).status_code == 200


@pytest.mark.django_db
def test_schema_operation_ids_are_label_studios():
    import io
    import json

    from django.core.management import call_command

    out = io.StringIO()
    call_command("spectacular", "--format", "openapi-json", stdout=out)
    paths = json.loads(out.getvalue())["paths"]
    assert paths["/api/projects/{id}/export/formats"]["get"]["operationId"] == "api_projects_export_formats_retrieve"
    convert = paths["/api/projects/{id}/exports/{export_pk}/convert"]["post"]
    assert convert["operationId"] == "api_projects_exports_convert_create"
    download = paths["/api/projects/{id}/exports/{export_pk}/download"]["get"]
    assert download["operationId"] == "api_projects_exports_download_retrieve"
