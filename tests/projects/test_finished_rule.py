"""Which tasks are finished (`is_labeled`, the `finished` task filter) and which the `annotated` and `skipped`
filters keep, as Label Studio 1.23.2 decides: the tables below are what tests/e2e/test_labelstudio_finished_parity.py
saw Label Studio do with the same imports (the rule in words: tests/e2e/LABEL_STUDIO_FACTS.md, "Finished tasks")."""

import pytest

from exports.snapshot import SnapshotWriter
from projects.models import Project, Task, counted_when_recounting, finished_tasks
from projects.services import project_update, tasks_import
from tests.factories import annotation_mixes, make_project, make_user, rectangle

pytestmark = pytest.mark.django_db

REQUEUE_FOR_OTHERS, REQUEUE_FOR_ME, IGNORE_SKIPPED = "REQUEUE_FOR_OTHERS", "REQUEUE_FOR_ME", "IGNORE_SKIPPED"
QUEUES = (REQUEUE_FOR_OTHERS, REQUEUE_FOR_ME, IGNORE_SKIPPED)

MIXES = annotation_mixes([rectangle()], [rectangle("Person")])
ALL = set(MIXES)
WITH_ANNOTATIONS = ALL - {"none"}
NOT_SKIPPED = {"U", "G", "UU", "GG", "US", "UG", "SG", "USG", "bare"}  # at least one annotation not skipped
SKIPPED_ONES = {"S", "X", "SS", "SX", "US", "SG", "USG"}  # at least one skipped annotation

# After an import: any annotation makes one annotator (the importer), whatever skip_queue says.
FINISHED_AFTER_IMPORT = {0: ALL, 1: WITH_ANNOTATIONS, 2: set()}

# After a settings change: (maximum_annotations, skip_queue, change) -> finished tasks.
FINISHED_AFTER_CHANGE = [
    (1, REQUEUE_FOR_OTHERS, {"skip_queue": IGNORE_SKIPPED}, WITH_ANNOTATIONS),
    # only tasks with an annotation that is not ground truth are counted again: X keeps its import-time value
    (1, REQUEUE_FOR_OTHERS, {"skip_queue": REQUEUE_FOR_ME}, WITH_ANNOTATIONS - {"S", "SS", "SX"}),
    (1, IGNORE_SKIPPED, {"skip_queue": REQUEUE_FOR_ME}, WITH_ANNOTATIONS - {"S", "SS", "SX"}),
    (1, REQUEUE_FOR_ME, {"maximum_annotations": 2}, set()),
    (1, IGNORE_SKIPPED, {"title": "Renamed"}, WITH_ANNOTATIONS),
    # a new overlap counts every task again: skipped annotations count only with IGNORE_SKIPPED
    (2, REQUEUE_FOR_OTHERS, {"maximum_annotations": 1}, NOT_SKIPPED),
    (2, REQUEUE_FOR_ME, {"skip_queue": IGNORE_SKIPPED}, set()),
    (2, IGNORE_SKIPPED, {"maximum_annotations": 1}, WITH_ANNOTATIONS),
    (2, IGNORE_SKIPPED, {"maximum_annotations": 1, "skip_queue": REQUEUE_FOR_ME}, NOT_SKIPPED),
    (0, REQUEUE_FOR_OTHERS, {"maximum_annotations": 1}, NOT_SKIPPED),
]


def imported(user, *, overlap: int, queue: str) -> tuple[Project, dict[int, str]]:
    project = make_project(user=user, maximum_annotations=overlap, skip_queue=queue)
    payload = [{"data": {"image": f"https://example.com/{name}.jpg"}, "annotations": a} for name, a in MIXES.items()]
    result = tasks_import(project=project, user=user, payload=payload)
    return project, dict(zip(result.task_ids, MIXES, strict=True))


def finished(project: Project, names: dict[int, str]) -> set[str]:
    return {names[pk] for pk in Task.objects.filter(project=project, is_labeled=True).values_list("pk", flat=True)}


@pytest.mark.parametrize("queue", QUEUES)
@pytest.mark.parametrize("overlap", [0, 1, 2])
def test_finished_after_an_import(user, overlap, queue):
    project, names = imported(user, overlap=overlap, queue=queue)
    assert finished(project, names) == FINISHED_AFTER_IMPORT[overlap]


@pytest.mark.parametrize(
    ("overlap", "queue", "change", "expected"),
    FINISHED_AFTER_CHANGE,
    ids=[f"max{case[0]}-{case[1]}-{'-'.join(case[2])}" for case in FINISHED_AFTER_CHANGE],
)
def test_finished_after_a_settings_change(user, overlap, queue, change, expected):
    project, names = imported(user, overlap=overlap, queue=queue)
    project_update(project=project, **change)
    assert finished(project, names) == expected


def test_two_annotators_finish_a_task_at_overlap_two(user, org):
    """Distinct users count, not annotations: the importer's two annotations are one annotator, a second
    user's annotation (as a duplicated project keeps them) makes two."""
    project, names = imported(user, overlap=1, queue=REQUEUE_FOR_OTHERS)
    other = make_user(email="other@example.com", organization=org)
    by_name = {name: pk for pk, name in names.items()}
    Task.objects.get(pk=by_name["US"]).annotations.filter(was_cancelled=True).update(completed_by=other)
    Task.objects.get(pk=by_name["UG"]).annotations.filter(ground_truth=True).update(completed_by=other)
    project_update(project=project, maximum_annotations=2)
    assert finished(project, names) == {"UG"}  # US's second annotator skipped, which does not count here
    project_update(project=project, skip_queue=IGNORE_SKIPPED)
    assert finished(project, names) == {"UG", "US"}


@pytest.mark.parametrize(
    ("overlap", "queue", "expected"),
    [
        (1, REQUEUE_FOR_ME, NOT_SKIPPED),
        (1, IGNORE_SKIPPED, WITH_ANNOTATIONS),
        (2, IGNORE_SKIPPED, set()),
        (0, REQUEUE_FOR_OTHERS, ALL),
        (-1, REQUEUE_FOR_OTHERS, ALL),
    ],
)
def test_the_rule_as_a_filter(user, overlap, queue, expected):
    project, names = imported(user, overlap=1, queue=REQUEUE_FOR_OTHERS)
    rule = finished_tasks(maximum_annotations=overlap, counted=counted_when_recounting(queue))
    tasks = Task.objects.filter(project=project)
    assert {names[pk] for pk in tasks.filter(rule).values_list("pk", flat=True)} == expected
    assert {names[pk] for pk in tasks.exclude(rule).values_list("pk", flat=True)} == ALL - expected


@pytest.mark.parametrize("queue", QUEUES)
@pytest.mark.parametrize("overlap", [1, 2])
def test_task_filters_of_a_snapshot(user, overlap, queue):
    """`finished` follows is_labeled; `annotated` means an annotation not skipped, `skipped` a skipped one,
    whatever the settings; `exclude` keeps exactly the rest."""
    project, names = imported(user, overlap=overlap, queue=queue)
    only = {"finished": FINISHED_AFTER_IMPORT[overlap], "annotated": NOT_SKIPPED, "skipped": SKIPPED_ONES}
    for name, expected in only.items():
        for mode, want in (("only", expected), ("exclude", ALL - expected)):
            writer = SnapshotWriter(project=project, task_filter_options={name: mode})
            kept = {names[row[0]] for batch in writer.batches() for row in batch}
            assert kept == want, (name, mode)
