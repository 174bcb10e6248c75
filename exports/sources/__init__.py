"""Where the snapshot writer reads a project's tasks, annotations, predictions and drafts.

`TaskRows` is the whole interface between the writer and a database: rows in the writer's column order, task
ids in ascending order, related rows grouped by task. `exports.sources.tables` reads the service's own tables;
another source (say, an existing Label Studio's database) is one more implementation, and the writer does not
change.
"""

from exports.sources.base import TaskRows, TaskSelection

__all__ = ["TaskRows", "TaskSelection"]
