"""Import throughput through the API. An opt-in benchmark that prints rates and asserts no timings:

    IMPORT_BENCH=10000,100000 SECRET_KEY=x DATA_DIR=/tmp/imp \
        .venv/bin/python -m pytest tests/projects/test_import_speed.py -q -s

Each task carries one annotation (3 rectangles + 1 choice) and one prediction, as Label Studio's recording 22.
"""

import os
import time

import orjson
import pytest
from django.db import connection
from django.urls import reverse

from projects.models import Annotation, Prediction, Task
from tests.factories import choice, make_project, rectangle

SIZES = [int(size) for size in os.environ.get("IMPORT_BENCH", "").split(",") if size.strip()]

pytestmark = pytest.mark.skipif(not SIZES, reason="benchmark: set IMPORT_BENCH=10000,100000 to run")


def bench_task(index: int) -> dict:
    regions = [rectangle("Car", 10.0, f"a{index}r1"), rectangle("Person", 50.5, f"a{index}r2")]
    regions.append(rectangle("Car", 70.0, f"a{index}r3"))
    return {
        "data": {"image": f"https://example.com/img/{index}.jpg"},
        "annotations": [{"result": [*regions, choice()], "lead_time": 12.5}],
        "predictions": [{"model_version": "yolo-v1", "score": 0.87, "result": [rectangle(), choice()]}],
    }


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("size", SIZES)
def test_import_rate(api_client, user, size, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024**3
    project = make_project(user=user)
    body = orjson.dumps([bench_task(i) for i in range(size)])
    url = reverse("project-import", kwargs={"pk": project.pk})
    api_client.get(reverse("project-detail", kwargs={"pk": project.pk}))  # loads the middleware, untimed
    started = time.perf_counter()
    response = api_client.post(url, body, content_type="application/json")
    elapsed = time.perf_counter() - started
    assert response.status_code == 201, response.content[:500]
    assert Task.objects.filter(project=project).count() == size
    assert Annotation.objects.filter(project=project).count() == Prediction.objects.filter(project=project).count()
    print(
        f"\n{connection.vendor}: {size} tasks ({len(body) / 1e6:.1f} MB) in {elapsed:.2f}s"
        f" = {size / elapsed:,.0f} tasks/s (server-reported duration {response.json()['duration']:.2f}s)"
    )
