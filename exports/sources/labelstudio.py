"""Snapshot rows read from an attached Label Studio's own tables (attach mode), on its read-only database.

Its tables have the columns of this service's own (the service mirrors Label Studio's export shape), so the
queries of `exports.sources.tables` serve them unchanged; only a task's `file_upload` differs: Label Studio keeps
an id there and exports the uploaded file's base name.
"""

from django.db.models import CharField, Func

from config.labelstudio.models import LabelStudioAnnotation, LabelStudioDraft, LabelStudioPrediction, LabelStudioTask
from config.labelstudio.router import DATABASE
from exports.sources.base import TaskSelection
from exports.sources.tables import TASK_COLUMNS, ModelTables, TableRows

__all__ = ["LABEL_STUDIO_TABLES", "LabelStudioRows"]

LABEL_STUDIO_TABLES = ModelTables(
    task=LabelStudioTask,
    annotation=LabelStudioAnnotation,
    prediction=LabelStudioPrediction,
    draft=LabelStudioDraft,
    database=DATABASE,
)


class BaseName(Func):
    """The last path segment of a stored file name (PostgreSQL)."""

    template = "regexp_replace(%(expressions)s, '^.*/', '')"
    output_field = CharField()


class LabelStudioRows(TableRows):
    task_columns = {**TASK_COLUMNS, "file_upload": BaseName("file_upload__file")}

    def __init__(self, selection: TaskSelection):
        super().__init__(selection, LABEL_STUDIO_TABLES)
