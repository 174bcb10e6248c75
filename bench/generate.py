"""Fill a project with N benchmark tasks quickly (PostgreSQL COPY, or executemany elsewhere).

Each task carries one annotation (three rectangles and a choice) and one prediction, the shape of the
contract's recorded examples. Used by bench/run.py; runs inside a configured Django process.
"""

import uuid
from datetime import UTC, datetime

import orjson
from django.db import connection, transaction

from projects.models import Annotation, Prediction, Project, Task

CHUNK = 20_000


def _rectangle(region: str, label: str, x: float, y: float) -> dict:
    return {
        "id": region,
        "from_name": "label",
        "to_name": "image",
        "type": "rectanglelabels",
        "original_width": 1920,
        "original_height": 1080,
        "image_rotation": 0,
        "value": {"x": x, "y": y, "width": 12.5, "height": 20.25, "rotation": 0, "rectanglelabels": [label]},
    }


def annotation_result(index: int) -> list[dict]:
    return [
        _rectangle(f"a{index}r1", "Car", 10.0, 20.0),
        _rectangle(f"a{index}r2", "Person", 50.5, 10.25),
        _rectangle(f"a{index}r3", "Car", 70.0, 60.0),
        {
            "id": f"a{index}c1",
            "from_name": "quality",
            "to_name": "image",
            "type": "choices",
            "value": {"choices": ["Good"]},
        },
    ]


def prediction_result(index: int) -> list[dict]:
    return [
        _rectangle(f"p{index}r1", "Car", 11.0, 21.0),
        {
            "id": f"p{index}c1",
            "from_name": "quality",
            "to_name": "image",
            "type": "choices",
            "value": {"choices": ["Good"]},
        },
    ]


def _ids(table: str, count: int) -> list[int]:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)", [table, count]
            )
            return [row[0] for row in cursor.fetchall()]
        cursor.execute(f'SELECT COALESCE(MAX(id), 0) FROM "{table}"')  # noqa: S608 -- table names are ours
        start = cursor.fetchone()[0] + 1
        return list(range(start, start + count))


def _insert(table: str, columns: list[str], rows: list[tuple]) -> None:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            names = ", ".join(columns)
            with cursor.cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            return
        marks = ", ".join(["%s"] * len(columns))
        cursor.executemany(f'INSERT INTO "{table}" ({", ".join(columns)}) VALUES ({marks})', rows)  # noqa: S608


def fill(project: Project, count: int, *, user_id: int) -> None:
    """Add `count` tasks with one annotation and one prediction each."""
    now = datetime.now(UTC)

    def json_text(value) -> str:
        return orjson.dumps(value).decode()

    postgres = connection.vendor == "postgresql"

    def uid():
        return uuid.uuid4() if postgres else uuid.uuid4().hex

    done = project.tasks.count()
    for start in range(0, count, CHUNK):
        size = min(CHUNK, count - start)
        with transaction.atomic():
            task_ids = _ids(Task._meta.db_table, size)
            annotation_ids = _ids(Annotation._meta.db_table, size)
            prediction_ids = _ids(Prediction._meta.db_table, size)
            tasks, annotations, predictions = [], [], []
            for offset in range(size):
                index = done + start + offset + 1
                tasks.append(
                    (
                        task_ids[offset],
                        project.pk,
                        json_text({"image": f"https://example.com/img/{index}.jpg"}),
                        "{}",
                        index,
                        now,
                        now,
                        True,
                        True,
                        1,
                        0,
                        1,
                    )
                )
                annotations.append(
                    (
                        annotation_ids[offset],
                        task_ids[offset],
                        project.pk,
                        user_id,
                        json_text(annotation_result(index)),
                        False,
                        False,
                        now,
                        now,
                        12.5,
                        "{}",
                        0,
                        uid(),
                        False,
                    )
                )
                predictions.append(
                    (
                        prediction_ids[offset],
                        task_ids[offset],
                        project.pk,
                        json_text(prediction_result(index)),
                        "bench-v1",
                        0.87,
                        0.0,
                        now,
                        now,
                    )
                )
            _insert(
                Task._meta.db_table,
                [
                    "id",
                    "project_id",
                    "data",
                    "meta",
                    "inner_id",
                    "created_at",
                    "updated_at",
                    "is_labeled",
                    "allow_skip",
                    "total_annotations",
                    "cancelled_annotations",
                    "total_predictions",
                ],
                tasks,
            )
            _insert(
                Annotation._meta.db_table,
                [
                    "id",
                    "task_id",
                    "project_id",
                    "completed_by_id",
                    "result",
                    "was_cancelled",
                    "ground_truth",
                    "created_at",
                    "updated_at",
                    "lead_time",
                    "prediction",
                    "result_count",
                    "unique_id",
                    "bulk_created",
                ],
                annotations,
            )
            _insert(
                Prediction._meta.db_table,
                [
                    "id",
                    "task_id",
                    "project_id",
                    "result",
                    "model_version",
                    "score",
                    "mislabeling",
                    "created_at",
                    "updated_at",
                ],
                predictions,
            )
