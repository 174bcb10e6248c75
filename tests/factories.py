"""Keyword-only builders with defaults, for tests."""

from typing import Any

from projects.models import Project
from projects.services import tasks_import
from users.models import Organization, OrganizationMember, User

IMAGE_CONFIG = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="label" toName="image">
    <Label value="Car"/>
    <Label value="Person"/>
  </RectangleLabels>
  <Choices name="quality" toName="image" choice="single">
    <Choice value="Good"/>
    <Choice value="Bad"/>
  </Choices>
</View>"""


def make_org(*, title: str = "Org") -> Organization:
    return Organization.objects.create(title=title)


def make_user(*, email: str = "user@example.com", organization: Organization | None = None, **fields: Any) -> User:
    organization = organization or make_org(title=f"{email} org")
    user = User.objects.create_user(
        username=fields.pop("username", email.split("@")[0]), email=email, password="pw-123456", **fields
    )
    OrganizationMember.objects.create(user=user, organization=organization)
    user.active_organization = organization
    user.save(update_fields=["active_organization"])
    return user


def make_project(*, user: User, title: str = "Project", label_config: str = IMAGE_CONFIG, **fields: Any) -> Project:
    return Project.objects.create(
        organization=user.active_organization, created_by=user, title=title, label_config=label_config, **fields
    )


def rectangle(label: str = "Car", x: float = 10.0, region: str = "r1") -> dict:
    return {
        "id": region,
        "from_name": "label",
        "to_name": "image",
        "type": "rectanglelabels",
        "original_width": 1920,
        "original_height": 1080,
        "image_rotation": 0,
        "value": {"x": x, "y": 20.0, "width": 30.0, "height": 40.0, "rotation": 0, "rectanglelabels": [label]},
    }


def choice(value: str = "Good") -> dict:
    return {"id": "c1", "from_name": "quality", "to_name": "image", "type": "choices", "value": {"choices": [value]}}


def task_payload(index: int, *, annotations: int = 1, cancelled: bool = False, ground_truth: bool = False) -> dict:
    return {
        "data": {"image": f"https://example.com/img/{index}.jpg"},
        "annotations": [
            {
                "result": [rectangle(), rectangle("Person", 50.0, "r2"), choice()],
                "was_cancelled": cancelled,
                "ground_truth": ground_truth,
                "lead_time": 12.5,
            }
            for _ in range(annotations)
        ],
        "predictions": [{"model_version": "v1", "score": 0.9, "result": [rectangle()]}],
    }


def fill_project(project: Project, *, user: User, count: int, **task_kwargs: Any) -> list[int]:
    """Import `count` tasks through the real import service; returns their ids."""
    result = tasks_import(project=project, user=user, payload=[task_payload(i, **task_kwargs) for i in range(count)])
    return result.task_ids


def annotation_mixes(usual_result: list, ground_truth_result: list) -> dict[str, list[dict]]:
    """Tasks' annotations for the finished-task rule, by name: U usual, S skipped, G ground truth, X skipped and
    ground truth; "bare" carries no flags at all (imported, it is a ground truth that is not skipped)."""
    usual = {"result": usual_result, "was_cancelled": False, "ground_truth": False}
    skipped = {"result": [], "was_cancelled": True, "ground_truth": False}
    ground_truth = {"result": ground_truth_result, "was_cancelled": False, "ground_truth": True}
    skipped_ground_truth = {"result": [], "was_cancelled": True, "ground_truth": True}
    return {
        "none": [],
        "U": [usual],
        "S": [skipped],
        "G": [ground_truth],
        "X": [skipped_ground_truth],
        "UU": [usual, usual],
        "SS": [skipped, skipped],
        "GG": [ground_truth, ground_truth],
        "US": [usual, skipped],
        "UG": [usual, ground_truth],
        "SG": [skipped, ground_truth],
        "SX": [skipped, skipped_ground_truth],
        "USG": [usual, skipped, ground_truth],
        "bare": [{"result": usual_result}],
    }
