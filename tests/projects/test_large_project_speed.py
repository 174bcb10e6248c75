"""Duplicate, config validation and delete of a large project through the API. An opt-in benchmark that prints
timings and asserts only correctness:

    PROJECT_BENCH=100000 DATABASE_URL=postgres://... SECRET_KEY=x DATA_DIR=/tmp/bench \
        .venv/bin/python -m pytest tests/projects/test_large_project_speed.py -q -s

The project is filled with bench/generate.py: each task has one annotation (3 rectangles + 1 choice) and one
prediction.
"""

import os
import time

import pytest
from django.db import connection
from django.urls import reverse

from bench.generate import fill
from projects.models import Annotation, Prediction, Task
from tests.factories import IMAGE_CONFIG, make_project

SIZES = [int(size) for size in os.environ.get("PROJECT_BENCH", "").split(",") if size.strip()]

pytestmark = pytest.mark.skipif(not SIZES, reason="benchmark: set PROJECT_BENCH=100000 to run")


def timed(call):
    started = time.perf_counter()
    result = call()
    return result, time.perf_counter() - started


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("size", SIZES)
def test_large_project(api_client, user, size):
    project = make_project(user=user)
    fill(project, size, user_id=user.pk)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    api_client.get(reverse("project-detail", kwargs={"pk": project.pk}))  # warm-up, untimed

    url = reverse("project-duplicate", kwargs={"pk": project.pk})
    response, duplicate_s = timed(lambda: api_client.post(url, {"mode": "settings,data", "title": "Copy"}))
    assert response.status_code == 201, response.content
    copy_id = response.json()["id"]
    assert Task.objects.filter(project_id=copy_id).count() == size
    assert Annotation.objects.filter(project_id=copy_id).count() == size
    assert Prediction.objects.filter(project_id=copy_id).count() == size

    detail = reverse("project-detail", kwargs={"pk": copy_id})
    response, detail_s = timed(lambda: api_client.get(detail))
    assert response.json()["task_number"] == size

    without_car = IMAGE_CONFIG.replace('<Label value="Car"/>', "")
    validate = reverse("project-label-config-validate", kwargs={"pk": copy_id})
    response, validate_s = timed(lambda: api_client.post(validate, {"label_config": without_car}))
    assert response.status_code == 400
    assert f"Car ({2 * size} annotations)" in response.json()["validation_errors"]["non_field_errors"][0]

    response, delete_s = timed(lambda: api_client.delete(detail))
    assert response.status_code == 204
    assert not Task.objects.filter(project_id=copy_id).exists()
    assert Task.objects.filter(project=project).count() == size

    print(
        f"\n{connection.vendor}, {size} tasks (+{size} annotations, +{size} predictions): "
        f"duplicate {duplicate_s:.2f}s, detail {detail_s:.2f}s, validate {validate_s:.2f}s, delete {delete_s:.2f}s"
    )
