"""The interface a snapshot data source implements (see the package docstring)."""

from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "ANNOTATION_KEYS",
    "DRAFT_KEYS",
    "PREDICTION_KEYS",
    "TASK_KEYS",
    "USER_KEYS",
    "TaskRows",
    "TaskSelection",
]

# The keys of each row a source returns, in order. JSON values come as their JSON text (or None), times as ISO
# 8601 UTC text ending in `Z` (or None); the writer splices both into its output as they are.
TASK_KEYS = (
    "id",
    "data",
    "meta",
    "created_at",
    "updated_at",
    "allow_skip",
    "inner_id",
    "total_annotations",
    "cancelled_annotations",
    "total_predictions",
    "project",
    "updated_by",
    "file_upload",
)
ANNOTATION_KEYS = (
    "id",
    "task",
    "completed_by",
    "result",
    "was_cancelled",
    "ground_truth",
    "created_at",
    "updated_at",
    "draft_created_at",
    "lead_time",
    "prediction",
    "result_count",
    "unique_id",
    "import_id",
    "last_action",
    "bulk_created",
    "project",
    "updated_by",
    "parent_prediction",
    "parent_annotation",
    "last_created_by",
)
# Appended to an annotation row when the completing user is written as an object.
USER_KEYS = ("email", "first_name", "last_name")
PREDICTION_KEYS = (
    "id",
    "task",
    "result",
    "model_version",
    "score",
    "cluster",
    "neighbors",
    "mislabeling",
    "created_at",
    "updated_at",
    "project",
)
DRAFT_KEYS = (
    "id",
    "task",
    "user",
    "result",
    "lead_time",
    "was_postponed",
    "import_id",
    "created_at",
    "updated_at",
    "annotation",
)


@dataclass(frozen=True)
class TaskSelection:
    """Which tasks and annotations of a project a snapshot holds: the create request's options, plus the bounds
    an easy export (`task_ids`) or one part of a split snapshot (`first_id`..`last_id`, both included) adds."""

    project_id: int
    task_filter_options: dict | None = None
    annotation_filter_options: dict | None = None
    task_ids: tuple[int, ...] | None = None
    first_id: int | None = None
    last_id: int | None = None


class TaskRows(Protocol):
    """The rows of one selection. Related rows come for a range of task ids, grouped by task id, in id order;
    `full=False` asks only for (id, task) pairs."""

    def count(self) -> int:
        """How many tasks the selection holds."""
        ...

    def task_id_at(self, offset: int) -> int | None:
        """The id of the task at `offset` in id order; None past the end."""
        ...

    def tasks(self, *, after_id: int, limit: int) -> list[tuple]:
        """Up to `limit` task rows (TASK_KEYS) with ids above `after_id`, in id order."""
        ...

    def project_task_ids(self, *, after_id: int, limit: int) -> list[int]:
        """Up to `limit` ids of the project's tasks above `after_id`, in id order, whatever the selection's filters
        (which tasks an incremental snapshot's base holds that the project no longer does)."""
        ...

    def annotations(self, first: int, last: int, *, with_users: bool) -> dict[int, list[tuple]]:
        """The selected annotations of tasks first..last (ANNOTATION_KEYS, then USER_KEYS when `with_users`)."""
        ...

    def predictions(self, first: int, last: int, *, full: bool) -> dict[int, list[tuple]]:
        """Predictions of tasks first..last (PREDICTION_KEYS, or (id, task) unless `full`)."""
        ...

    def drafts(self, first: int, last: int, *, full: bool) -> dict[int, list[tuple]]:
        """Drafts of tasks first..last (DRAFT_KEYS, or (id, task) unless `full`)."""
        ...

    def read_ahead_database(self) -> str | None:
        """The database alias a second thread may read the next batch from (on its own connection) while this
        one is encoded; None when batches must be read in the writer's thread."""
        ...
