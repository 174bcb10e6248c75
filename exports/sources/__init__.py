"""Where the snapshot writer reads a project's tasks, annotations, predictions and drafts.

`TaskRows` is the whole interface between the writer and a database: rows in the writer's column order, task
ids in ascending order, related rows grouped by task. `exports.sources.tables` reads the service's own tables;
another source (say, an existing Label Studio's database) is one more implementation, and the writer does not
change.
"""

from django.conf import settings

from exports.sources.base import TaskRows, TaskSelection
from exports.sources.labelstudio import LabelStudioRows
from exports.sources.tables import TableRows

__all__ = ["TaskRows", "TaskSelection", "rows_for"]


def rows_for(selection: TaskSelection) -> TaskRows:
    """The rows of a selection where the projects live: the attached Label Studio's tables in attach mode, the
    service's own otherwise."""
    if settings.LABEL_STUDIO_ATTACHED:
        return LabelStudioRows(selection)
    return TableRows(selection)
