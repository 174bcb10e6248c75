"""Attach mode against Label Studio itself, side by side, on the same data and machine.

    .venv/bin/python bench/attach.py --tasks 100000

Starts Label Studio 1.23.2 on PostgreSQL (installed into its own venv by tests/e2e/labelstudio.py), fills one
project with N tasks of one annotation (four regions) and one prediction each, written straight into Label
Studio's tables, then starts this service in attach mode and nginx with the shipped config. It measures the
easy export (`GET /api/projects/{id}/export?exportType=JSON&download_all_tasks=true`) and a snapshot (create,
poll to completion, download) once directly from Label Studio and once through the proxy, with the peak
memory growth of the server process that did the work, and prints the ratios.
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from memory import PeakRss, process_tree  # noqa: E402

from tests.e2e import labelstudio as lsh  # noqa: E402
from tests.e2e.attach import AttachedService, Nginx, drop, grant_reader, recreate, server_url  # noqa: E402

LS_DATABASE = "lsharness_bench"
SERVICE_DATABASE = "lsexport_attach_bench"

FILL_SQL = """
WITH new_tasks AS (
    INSERT INTO task (data, meta, created_at, updated_at, is_labeled, overlap, total_annotations,
                      cancelled_annotations, total_predictions, comment_count, unresolved_comment_count,
                      project_id, inner_id, allow_skip)
    SELECT jsonb_build_object('image', 'https://example.com/img/' || n || '.jpg', 'index', n), '{}'::jsonb,
           now(), now(), true, 1, 1, 0, 1, 0, 0, %(project)s, n, true
    FROM generate_series(1, %(count)s) AS n
    RETURNING id
), annotations AS (
    INSERT INTO task_completion (result, was_cancelled, ground_truth, created_at, updated_at, result_count,
                                 task_id, project_id, completed_by_id, lead_time, bulk_created)
    SELECT %(result)s::jsonb, false, false, now(), now(), 4, id, %(project)s, %(user)s, 12.5, false
    FROM new_tasks
)
INSERT INTO prediction (result, score, model_version, created_at, updated_at, task_id, project_id, mislabeling)
SELECT %(result)s::jsonb, 0.87, 'bench-v1', now(), now(), id, %(project)s, 0 FROM new_tasks
"""


def regions() -> list[dict]:
    return [
        {
            "id": f"r{index}",
            "from_name": "label",
            "to_name": "image",
            "type": "rectanglelabels",
            "original_width": 1920,
            "original_height": 1080,
            "image_rotation": 0,
            "value": {
                "x": 10.0 * index,
                "y": 5.0,
                "width": 8.5,
                "height": 12.25,
                "rotation": 0,
                "rectanglelabels": ["Car" if index % 2 else "Plane"],
            },  # fmt: skip
        }
        for index in range(4)
    ]


def easy_export(base: str, project: int, headers: dict, pids: list[int]) -> dict:
    with PeakRss(pids, interval=0.05) as memory:
        started = time.monotonic()
        response = requests.get(
            f"{base}/api/projects/{project}/export",
            params={"exportType": "JSON", "download_all_tasks": "true"},
            headers=headers,
            stream=True,
            timeout=3600,
        )
        assert response.status_code == 200, response.text[:300]
        size = sum(len(chunk) for chunk in response.iter_content(1 << 20))
        seconds = time.monotonic() - started
    return {"seconds": round(seconds, 2), "bytes": size, "rss_growth_mb": memory.growth_mb()}


def snapshot(base: str, project: int, headers: dict, pids: list[int]) -> dict:
    with PeakRss(pids, interval=0.05) as memory:
        started = time.monotonic()
        created = requests.post(f"{base}/api/projects/{project}/exports/", json={}, headers=headers, timeout=3600)
        assert created.status_code == 201, created.text[:300]
        export_id = created.json()["id"]
        while True:
            export = requests.get(f"{base}/api/projects/{project}/exports/{export_id}", headers=headers, timeout=60)
            status = export.json()["status"]
            assert status != "failed", export.text
            if status == "completed":
                break
            time.sleep(0.05)
        written = time.monotonic() - started
        download = requests.get(
            f"{base}/api/projects/{project}/exports/{export_id}/download", headers=headers, stream=True, timeout=3600
        )
        assert download.status_code == 200, download.text[:300]
        size = sum(len(chunk) for chunk in download.iter_content(1 << 20))
        seconds = time.monotonic() - started
    return {
        "written_seconds": round(written, 2),
        "seconds": round(seconds, 2),
        "bytes": size,
        "rss_growth_mb": memory.growth_mb(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    ls = lsh.start_label_studio(database=LS_DATABASE)
    admin_url = server_url(lsh.PG_URL, "postgres")
    service = nginx = None
    try:
        token = {"Authorization": f"Token {ls.admin.token}"}
        project = ls.client(token=ls.admin.token).create_project("Bench", lsh.IMAGE_CONFIG)["id"]
        started = time.monotonic()
        ls.sql(
            FILL_SQL, {"project": project, "count": args.tasks, "user": ls.admin.id, "result": json.dumps(regions())}
        )
        print(f"filled {args.tasks} tasks into Label Studio's tables in {time.monotonic() - started:.1f} s")

        recreate(admin_url, SERVICE_DATABASE)
        service = AttachedService(
            Path(tempfile.mkdtemp(prefix="attach-bench-")),
            database_url=server_url(lsh.PG_URL, SERVICE_DATABASE),
            label_studio_database_url=grant_reader(ls.database_url),
            label_studio_url=ls.url,
        )
        service.start()
        nginx = Nginx(service.data_dir, label_studio_port=ls.port, service_port=service.port)
        nginx.start()
        assert service.web is not None
        assert service.web.popen is not None
        ours_pids = process_tree(service.web.popen.pid)
        theirs_pids = process_tree(ls.process.pid)

        results = {"tasks": args.tasks}
        results["label_studio_easy_export"] = easy_export(ls.url, project, token, theirs_pids)
        print("Label Studio, easy export:", results["label_studio_easy_export"])
        results["service_easy_export"] = easy_export(nginx.base, project, token, ours_pids)
        print("through the proxy, easy export:", results["service_easy_export"])
        results["label_studio_snapshot"] = snapshot(ls.url, project, token, theirs_pids)
        print("Label Studio, snapshot:", results["label_studio_snapshot"])
        results["service_snapshot"] = snapshot(nginx.base, project, token, ours_pids)
        print("through the proxy, snapshot:", results["service_snapshot"])
        for kind in ("easy_export", "snapshot"):
            ratio = results[f"label_studio_{kind}"]["seconds"] / max(results[f"service_{kind}"]["seconds"], 0.001)
            results[f"{kind}_speedup"] = round(ratio, 1)
            print(f"{kind}: {ratio:.1f}x faster through the service")
        print(json.dumps(results, indent=2))
        if args.json:
            args.json.write_text(json.dumps(results, indent=2))
    finally:
        for part in (nginx, service):
            if part is not None:
                part.stop()
        ls.stop(drop=True)
        drop(admin_url, SERVICE_DATABASE)


if __name__ == "__main__":
    main()
