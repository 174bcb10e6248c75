"""Schemathesis against a running server: every operation of the schema, valid and invalid inputs.

The server is a real `manage.py runserver` process on a free port with its own SQLite data folder,
seeded through the API with projects, tasks, annotations and a completed snapshot. The run passes
when no response is a 5xx, every response matches the schema (status code, content type, body,
headers), and every error body is the contract's JSON (the custom check in `tests/fuzz/hooks.py`).

FUZZ_MAX_EXAMPLES (default 20) and FUZZ_SEED (default fixed, so CI is repeatable) tune the run.
"""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "fuzz0000000000000000000000000000000000ab"
CONFIG = (
    '<View><Image name="image" value="$image"/>'
    '<RectangleLabels name="label" toName="image"><Label value="Cat"/><Label value="Dog"/></RectangleLabels>'
    '<Choices name="choice" toName="image"><Choice value="Indoor"/><Choice value="Outdoor"/></Choices></View>'
)

pytestmark = pytest.mark.skipif(
    bool(os.environ.get("DATABASE_URL")), reason="the fuzz run uses its own SQLite server; it runs in the SQLite pass"
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _manage(env: dict, *args: str) -> str:
    result = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"manage.py {' '.join(args)} failed:\n{result.stderr[-5000:]}"
    return result.stdout


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("fuzz-data")
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL")}
    env.update(DATA_DIR=str(data_dir), SECRET_KEY="fuzz-only-secret", DEBUG="0", ALLOWED_HOSTS="127.0.0.1,localhost")
    _manage(env, "migrate", "--noinput")
    _manage(env, "create_user", "--email", "fuzz@example.com", "--password", "fuzz", "--token", TOKEN)
    port = _free_port()
    log = (data_dir / "server.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                requests.get(f"{url}/api/version/", timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        yield url, data_dir
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


def _seed(url: str) -> dict[str, int]:
    session = requests.Session()
    session.headers["Authorization"] = f"Token {TOKEN}"
    ids = {}
    for index in range(3):
        response = session.post(f"{url}/api/projects/", json={"title": f"Fuzz {index}", "label_config": CONFIG})
        response.raise_for_status()
        ids.setdefault("id", response.json()["id"])
    project = ids["id"]
    result = [
        {
            "from_name": "label",
            "to_name": "image",
            "type": "rectanglelabels",
            "original_width": 640,
            "original_height": 480,
            "value": {"x": 10, "y": 20, "width": 30, "height": 40, "rotation": 0, "rectanglelabels": ["Cat"]},
        }
    ]
    tasks = [
        {"data": {"image": f"https://example.com/{n}.jpg"}, "annotations": [{"result": result}] if n % 2 else []}
        for n in range(6)
    ]
    session.post(f"{url}/api/projects/{project}/import", json=tasks).raise_for_status()
    export = session.post(f"{url}/api/projects/{project}/exports/", json={}).json()["id"]
    for _ in range(100):
        if session.get(f"{url}/api/projects/{project}/exports/{export}").json()["status"] == "completed":
            break
        time.sleep(0.1)
    ids["export_pk"] = export
    return ids


def test_no_server_errors_and_schema_conformance(server):
    url, data_dir = server
    ids = _seed(url)
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "tests.fuzz.hooks",
        "FUZZ_PATH_IDS": ",".join(f"{name}={value}" for name, value in ids.items()),
        "PYTHONPATH": str(ROOT),
    }
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "run",
        f"{url}/api/schema/?format=json",
        "--header",
        f"Authorization: Token {TOKEN}",
        "--checks",
        "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,"
        "response_headers_conformance,error_body_is_contract_json",
        "--phases",
        "examples,coverage,fuzzing",
        "--max-examples",
        os.environ.get("FUZZ_MAX_EXAMPLES", "20"),
        "--seed",
        os.environ.get("FUZZ_SEED", "20261130"),
        "--workers",
        "1",
        "--request-timeout",
        "30",
        "--no-color",
    ]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    server_log = (data_dir / "server.log").read_text(errors="replace")
    tracebacks = server_log.count("Traceback")
    # Generated bodies can be huge; shorten each line so the whole report stays readable.
    report = "\n".join(line[:300] for line in (result.stdout + result.stderr).splitlines())
    errors = "\n".join(line for line in server_log.splitlines() if "HTTP/1.1" not in line)[-20000:]
    assert result.returncode == 0, f"schemathesis found failures:\n{report}\n\nserver log:\n{errors}"
    assert tracebacks == 0, f"the server logged {tracebacks} tracebacks:\n{errors}"
