"""Label config parsing and validation match Label Studio 1.23.2 without Django or a database."""

from __future__ import annotations

import json

import pytest

from projects.label_config import (
    EMPTY_CONFIG_MESSAGE,
    MAX_LABEL_CONFIG_BYTES,
    MAX_LABEL_CONFIG_DEPTH,
    LabelConfigError,
    config_has_control_tags,
    config_suitable_for_bulk_annotation,
    control_weights,
    data_keys,
    data_types,
    essential_data_changed,
    labels_by_control,
    parse_label_config,
    validate_label_config,
)

ANCHOR_CONFIG = (
    '<View>\n  <Image name="image" value="$image"/>\n  <RectangleLabels name="label" toName="image">\n'
    '    <Label value="Car"/>\n    <Label value="Person"/>\n  </RectangleLabels>\n'
    '  <Choices name="quality" toName="image" choice="single">\n    <Choice value="Good"/>\n'
    '    <Choice value="Bad"/>\n  </Choices>\n</View>'
)
IMAGE_INPUT = {"type": "Image", "valueType": None, "value": "image"}
ANCHOR_PARSED = {
    "label": {
        "type": "RectangleLabels",
        "to_name": ["image"],
        "inputs": [IMAGE_INPUT],
        "labels": ["Car", "Person"],
        "labels_attrs": {"Car": {"value": "Car"}, "Person": {"value": "Person"}},
    },
    "quality": {
        "type": "Choices",
        "to_name": ["image"],
        "inputs": [IMAGE_INPUT],
        "labels": ["Good", "Bad"],
        "labels_attrs": {"Good": {"value": "Good"}, "Bad": {"value": "Bad"}},
    },
}
# The exact bytes Label Studio 1.23.2 returned for the anchor project's parsed_label_config.
ANCHOR_PARSED_JSON = (
    '{"label": {"type": "RectangleLabels", "to_name": ["image"], "inputs": [{"type": "Image", "valueType": null, '
    '"value": "image"}], "labels": ["Car", "Person"], "labels_attrs": {"Car": {"value": "Car"}, "Person": {"value": '
    '"Person"}}}, "quality": {"type": "Choices", "to_name": ["image"], "inputs": [{"type": "Image", "valueType": '
    'null, "value": "image"}], "labels": ["Good", "Bad"], "labels_attrs": {"Good": {"value": "Good"}, "Bad": '
    '{"value": "Bad"}}}}'
)


def _error(xml: str | None) -> str:
    """Return the message validate_label_config raises for a config."""
    with pytest.raises(LabelConfigError) as caught:
        validate_label_config(xml)
    return str(caught.value)


def test_anchor_config_parses_exactly_like_label_studio() -> None:
    """The recorded project config gives the recorded parsed_label_config, keys in the same order."""
    parsed = parse_label_config(ANCHOR_CONFIG)

    assert parsed == ANCHOR_PARSED
    assert json.dumps(parsed) == ANCHOR_PARSED_JSON
    assert validate_label_config(ANCHOR_CONFIG) == ANCHOR_PARSED


def test_anchor_config_control_weights_and_flags() -> None:
    """Every control and label weighs 1.0 by default and the config counts as having control tags."""
    parsed = parse_label_config(ANCHOR_CONFIG)

    assert control_weights(parsed) == {
        "label": {"overall": 1.0, "type": "RectangleLabels", "labels": {"Car": 1.0, "Person": 1.0}},
        "quality": {"overall": 1.0, "type": "Choices", "labels": {"Good": 1.0, "Bad": 1.0}},
    }
    assert config_has_control_tags(parsed) is True
    assert labels_by_control(parsed) == {"label": ["Car", "Person"], "quality": ["Good", "Bad"]}
    assert config_suitable_for_bulk_annotation(ANCHOR_CONFIG) is False


def test_control_weights_keep_previous_values() -> None:
    """Weights already set on a project survive a recomputation; new labels get 1.0."""
    parsed = parse_label_config(ANCHOR_CONFIG)
    previous = {"label": {"overall": 0.5, "labels": {"Car": 2.0, "Person": None}}, "quality": "garbage"}

    weights = control_weights(parsed, previous)

    assert weights["label"] == {"overall": 0.5, "type": "RectangleLabels", "labels": {"Car": 2.0, "Person": 1.0}}
    assert weights["quality"]["overall"] == 1.0


@pytest.mark.parametrize("xml", ["<View></View>", "<View/>", "<View>\n  <Header value='Hi'/>\n</View>"])
def test_config_without_controls(xml: str) -> None:
    """A config without control tags parses to {} and has no weights, as Label Studio's default project."""
    parsed = validate_label_config(xml)

    assert parsed == {}
    assert parse_label_config(xml) == {}
    assert control_weights(parsed) == {}
    assert config_has_control_tags(parsed) is False
    assert config_suitable_for_bulk_annotation(xml) is True


@pytest.mark.parametrize("xml", [None, "", "   \n"])
def test_empty_config_is_rejected_by_validation(xml: str | None) -> None:
    """A missing or blank config gets Label Studio's 'not set' message, while parsing it gives {}."""
    assert _error(xml) == EMPTY_CONFIG_MESSAGE == "Label config is not set or is empty"
    if xml is not None and not xml.strip():
        return
    assert parse_label_config(xml) == {}


def test_multiple_to_name_targets() -> None:
    """A comma-separated toName lists every target and links every matching object as an input."""
    xml = (
        '<View><Image name="img1" value="$a"/><Image name="img2" value="$b" valueType="url"/>'
        '<RectangleLabels name="box" toName="img1,img2"><Label value="A"/></RectangleLabels></View>'
    )

    parsed = validate_label_config(xml)

    assert parsed["box"]["to_name"] == ["img1", "img2"]
    assert parsed["box"]["inputs"] == [
        {"type": "Image", "valueType": None, "value": "a"},
        {"type": "Image", "valueType": "url", "value": "b"},
    ]


def test_to_name_targets_are_not_stripped() -> None:
    """A space after the comma is part of the target name, so Label Studio reports it as missing."""
    xml = (
        '<View><Image name="img1" value="$a"/><Image name="img2" value="$b"/>'
        '<RectangleLabels name="l" toName="img1, img2"><Label value="A"/></RectangleLabels></View>'
    )

    assert _error(xml) == "toName=\" img2\" not found in names: ['img1', 'img2', 'l']"
    assert parse_label_config(xml)["l"]["to_name"] == ["img1", " img2"]


def test_missing_to_name_target_message() -> None:
    """A toName pointing nowhere gives Label Studio's exact message, names sorted."""
    xml = (
        '<View><Image name="image" value="$image"/><RectangleLabels name="label" toName="nonexistent">'
        '<Label value="Car"/></RectangleLabels></View>'
    )

    assert _error(xml) == "toName=\"nonexistent\" not found in names: ['image', 'label']"
    assert parse_label_config(xml)["label"]["inputs"] == []


def test_nested_views_and_wrapped_choices_still_count() -> None:
    """Controls and options nested in View, Header or other layout tags are found at any depth."""
    xml = (
        '<View><View style="display: flex"><Text name="text" value="$text"/></View>'
        '<Header value="Pick"/><View><View><Choices name="topic" toName="text" choice="multiple">'
        '<View><Choice value="Sports"/></View><Choice value="News"/></Choices></View></View>'
        '<Filter name="f" toName="topic"/></View>'
    )

    parsed = validate_label_config(xml)

    assert list(parsed) == ["topic"]
    assert parsed["topic"]["labels"] == ["Sports", "News"]
    assert parsed["topic"]["inputs"] == [{"type": "Text", "valueType": None, "value": "text"}]
    assert config_suitable_for_bulk_annotation(xml) is True


def test_unicode_label_values_and_attributes() -> None:
    """Non-ASCII label values survive unchanged, with every attribute of the label kept in labels_attrs."""
    xml = (
        '<View><Text name="t" value="$t"/><Labels name="ner" toName="t">'
        '<Label value="Café" background="red" hotkey="c"/><Label value="日本語"/><Label value="🚗 car"/>'
        "</Labels></View>"
    )

    parsed = validate_label_config(xml)

    assert parsed["ner"]["labels"] == ["Café", "日本語", "🚗 car"]
    assert parsed["ner"]["labels_attrs"]["Café"] == {"value": "Café", "background": "red", "hotkey": "c"}
    assert control_weights(parsed)["ner"]["labels"] == {"Café": 1.0, "日本語": 1.0, "🚗 car": 1.0}


def test_alias_names_the_label() -> None:
    """A label with an alias is listed under the alias, a later duplicate replacing the earlier attributes."""
    xml = (
        '<View><Text name="t" value="$t"/><Choices name="c" toName="t">'
        '<Choice value="a" alias="A" hotkey="1"/><Choice value="b" alias="A"/><Choice value="c"/></Choices></View>'
    )

    parsed = parse_label_config(xml)

    assert parsed["c"]["labels"] == ["A", "c"]
    assert parsed["c"]["labels_attrs"]["A"] == {"value": "b", "alias": "A"}


def test_optional_control_keys() -> None:
    """Dynamic labels, per-region conditionals and Repeater index regexes appear as Label Studio adds them."""
    xml = (
        '<View><Repeater on="$images" indexFlag="{{idx}}"><Image name="image_{{idx}}" value="$images[{{idx}}].url"/>'
        '<Choices name="kind_{{idx}}" toName="image_{{idx}}" value="$options" perRegion="true" whenTagName="box"/>'
        "</Repeater></View>"
    )

    parsed = parse_label_config(xml)

    assert parsed["kind_{{idx}}"] == {
        "type": "Choices",
        "to_name": ["image_{{idx}}"],
        "regex": {"{{idx}}": ".*"},
        "conditionals": {"type": "tag", "name": "box"},
        "dynamic_labels": True,
        "inputs": [{"type": "Image", "valueType": None, "value": "images[{{idx}}].url"}],
        "labels": [],
        "labels_attrs": {},
    }


def test_duplicate_names_are_rejected() -> None:
    """Two tags sharing a name fail with Label Studio's message."""
    xml = '<View><Text name="t" value="$t"/><Text name="t" value="$u"/></View>'

    assert _error(xml) == "Label config contains non-unique names"


@pytest.mark.parametrize(
    ("xml", "message"),
    [
        ('<View><Image name="image" value="$image"></View', "unclosed token: line 1, column 41"),
        ('<View><Image name="image" value="$image"/></View><View/>', "junk after document element: line 1, column 49"),
        ("<View><Text></View>", "mismatched tag: line 1, column 14"),
    ],
)
def test_broken_xml_reports_line_and_column(xml: str, message: str) -> None:
    """Malformed XML fails with the expat message Label Studio shows on project create."""
    assert _error(xml) == message
    with pytest.raises(LabelConfigError, match="line 1, column"):
        parse_label_config(xml)


@pytest.mark.parametrize(
    ("xml", "message"),
    [
        ('<View><Image value="$image"/></View>', "Validation failed on : 'name' is a required property"),
        ('<View><Image name="image"/></View>', "Validation failed on : 'value' is a required property"),
        (
            '<View><Text name="t" value="$t"/><Choices name="c" toName="t"><Choice alias="a"/></Choices></View>',
            "Validation failed on Choice/0: 'value' is a required property",
        ),
        (
            '<View><Text name="t" value="$t"/><Labels name="c" toName="t"/></View>',
            "Validation failed on : 'Label' is a required property",
        ),
        (
            '<View><Text name="t" value="$t"/><TextArea name="1" toName="t"/></View>',
            "Validation failed on @name: 1 is not of type 'string'",
        ),
        (
            '<View><Text name="t" value="$t"/><Text name="t2"/></View>',
            "Validation failed on 1: 'value' is a required property",
        ),
    ],
)
def test_schema_violations_use_label_studio_messages(xml: str, message: str) -> None:
    """Structural mistakes are reported with the message Label Studio's schema check gives."""
    assert _error(xml) == message


def test_billion_laughs_is_rejected_without_expansion() -> None:
    """A DTD with nested entities is refused before any entity is expanded."""
    entities = '<!ENTITY lol0 "lol">' + "".join(
        f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10}">' for i in range(1, 10)
    )
    xml = f'<?xml version="1.0"?><!DOCTYPE lolz [{entities}]><View><Text name="t" value="&lol9;"/></View>'

    assert _error(xml) == "DTDForbidden(name='lolz', system_id=None, public_id=None)"
    with pytest.raises(LabelConfigError):
        parse_label_config(xml)


def test_external_entity_is_rejected() -> None:
    """An external entity (XXE) is refused rather than read from disk."""
    xml = '<!DOCTYPE v [<!ENTITY x SYSTEM "file:///etc/passwd">]><View><Header value="&x;"/></View>'

    with pytest.raises(LabelConfigError, match="DTDForbidden"):
        validate_label_config(xml)


def test_oversize_config_is_rejected() -> None:
    """A config above MAX_LABEL_CONFIG_BYTES is refused before parsing, counting UTF-8 bytes."""
    padding = "<Header value='x'/>" * (MAX_LABEL_CONFIG_BYTES // 19 + 1)
    too_big = f"<View>{padding}</View>"
    multibyte = "<View><Header value='" + "é" * (MAX_LABEL_CONFIG_BYTES // 2) + "'/></View>"

    for xml in (too_big, multibyte):
        with pytest.raises(LabelConfigError, match="too large"):
            validate_label_config(xml)
        with pytest.raises(LabelConfigError, match="too large"):
            parse_label_config(xml)


def test_overly_deep_config_is_rejected() -> None:
    """Nesting deeper than MAX_LABEL_CONFIG_DEPTH is refused, the limit itself is fine."""
    at_limit = "<View>" * MAX_LABEL_CONFIG_DEPTH + "</View>" * MAX_LABEL_CONFIG_DEPTH
    too_deep = "<View>" * (MAX_LABEL_CONFIG_DEPTH + 1) + "</View>" * (MAX_LABEL_CONFIG_DEPTH + 1)

    assert validate_label_config(at_limit) == {}
    with pytest.raises(LabelConfigError, match="nested too deeply"):
        validate_label_config(too_deep)


def test_encoding_declaration_is_rejected() -> None:
    """Text declaring an encoding is refused with lxml's message, since Label Studio cannot parse it."""
    xml = '<?xml version="1.0" encoding="utf-8"?><View><Image name="image" value="$image"/></View>'

    assert _error(xml).startswith("Unicode strings with encoding declaration are not supported.")
    assert validate_label_config('<?xml version="1.0"?><View/>') == {}


def test_video_playback_speed_checks() -> None:
    """Invalid Video playback speeds are all reported at once, one line each."""
    xml = '<View><Video name="v" value="$v" defaultPlaybackSpeed="20" minPlaybackSpeed="abc"/></View>'

    assert _error(xml) == (
        'Video tag "v": minPlaybackSpeed must be a number, got "abc"\n'
        'Video tag "v": defaultPlaybackSpeed must be between 0.05 and 10, got 20.0'
    )


def test_non_string_config_is_rejected() -> None:
    """Only text configs are accepted."""
    with pytest.raises(LabelConfigError, match="must be a string"):
        validate_label_config(b"<View/>")  # type: ignore[arg-type]


def test_data_keys_from_parsed_config_and_xml() -> None:
    """Data keys drop the $ sign, come from object values, and a Repeater reads its list key."""
    xml = (
        '<View><Image name="image" value="$image"/><Text name="caption" value="Hello $author"/>'
        '<Header value="$title"/><RectangleLabels name="box" toName="image"><Label value="Car"/></RectangleLabels>'
        '<Choices name="c" toName="caption"><Choice value="ok"/></Choices>'
        '<Repeater on="$pages" indexFlag="{{idx}}"><Image name="page_{{idx}}" value="$pages[{{idx}}].url"/>'
        '<Rating name="r_{{idx}}" toName="page_{{idx}}"/></Repeater></View>'
    )

    assert data_keys(parse_label_config(xml)) == {"image", "author", "pages"}
    assert data_keys(xml) == {"image", "author", "pages"}
    assert data_types(xml) == {"image": "Image", "author": "Text", "pages[{{idx}}].url": "Image"}
    assert data_keys({}) == set()


def test_data_types_prefers_video() -> None:
    """When Audio and Video share a key, the key stays a Video key, as in Label Studio."""
    xml = '<View><Audio name="a" value="$v"/><Video name="vv" value="$v"/><Audio name="a2" value="$v"/></View>'

    assert data_types(xml) == {"v": "Video"}


@pytest.mark.parametrize(
    ("xml", "suitable"),
    [
        ('<View><Text name="t" value="$t"/><Choices name="c" toName="t"><Choice value="a"/></Choices></View>', True),
        ('<View><Text name="t" value="$t"/><Choices name="c" toName="t" value="$o"/></View>', False),
        ('<View><Text name="t" value="$t"/><TextArea name="c" toName="t" perRegion="TRUE"/></View>', False),
        ('<View><Text name="t" value="$t"/><Labels name="c" toName="t"><Label value="a"/></Labels></View>', False),
        ('<View><Text name="t" value="$t"/><Taxonomy name="c" toName="t" apiUrl="http://x"/></View>', False),
    ],
)
def test_bulk_annotation_suitability(xml: str, suitable: bool) -> None:
    """Only per-task classification controls make a config suitable for bulk annotation."""
    assert config_suitable_for_bulk_annotation(xml) is suitable


def test_essential_data_changed() -> None:
    """Removing a label or adding a control is essential; adding a label is not."""
    old = parse_label_config(ANCHOR_CONFIG)
    truck = '<Label value="Person"/><Label value="Truck"/>'
    added_label = parse_label_config(ANCHOR_CONFIG.replace('<Label value="Person"/>', truck))
    removed_label = parse_label_config(ANCHOR_CONFIG.replace('<Label value="Car"/>', ""))

    assert essential_data_changed(old, old) is False
    assert essential_data_changed(added_label, old) is False
    assert essential_data_changed(removed_label, old) is True
    assert essential_data_changed(old, {}) is True
