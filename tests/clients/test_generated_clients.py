"""Clients generated from the checked-in schema (tests/schema/openapi.json) by tools nobody here wrote, each run
through the same scripted flow against a live server.

- Python: openapi-python-client (pinned in the test extras), generated into a temporary folder; generation must
  print no warning; the flow is tests/clients/python_flow.py.
- TypeScript: @hey-api/openapi-ts and TypeScript (pinned in tests/clients/ts/package-lock.json), generated into
  tests/clients/ts/generated, compiled with `tsc --strict`, run by Node.js; the flow is tests/clients/ts/flow.ts.
  Needs `node` and `npm` (Node.js 20.19 or newer); without them the test is skipped, unless
  REQUIRE_TS_CLIENT=1 (set by CI), which makes it fail instead.
"""

import importlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from rest_framework.authtoken.models import Token

from tests.clients import python_flow
from tests.factories import make_org, make_user

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / "tests" / "schema" / "openapi.json"
TS_DIR = Path(__file__).resolve().parent / "ts"
PYTHON_CONFIG = Path(__file__).resolve().parent / "openapi-python-client.yml"
WARNING_WORDS = ("warning", "unable to", "skipping", "error")


def _run(command: list[str], *, cwd: Path, timeout: float = 300, env: dict | None = None) -> str:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{' '.join(command)} exited {done.returncode}:\n{output}"
    return output


def _quiet(output: str) -> None:
    """Generation printed no warning (the generators list skipped or broken parts as warnings)."""
    noisy = [line for line in output.splitlines() if any(word in line.lower() for word in WARNING_WORDS)]
    assert not noisy, "the generator warned:\n" + "\n".join(noisy)


@pytest.fixture(scope="module")
def python_client(tmp_path_factory):
    """The generated package `lsexport_client`, importable for the module's tests."""
    out = tmp_path_factory.mktemp("python-client") / "lsexport_client"
    tool = Path(sys.executable).with_name("openapi-python-client")
    env = {**os.environ, "PATH": f"{tool.parent}{os.pathsep}{os.environ.get('PATH', '')}"}  # its ruff hooks
    command = [str(tool), "generate", "--path", str(SCHEMA), "--config", str(PYTHON_CONFIG)]
    _quiet(_run([*command, "--meta", "none", "--output-path", str(out)], cwd=out.parent, env=env))
    sys.path.insert(0, str(out.parent))
    try:
        yield importlib.import_module("lsexport_client")
    finally:
        sys.path.remove(str(out.parent))
        for name in [name for name in sys.modules if name.split(".")[0] == "lsexport_client"]:
            del sys.modules[name]


@pytest.fixture
def token_user(db):
    user = make_user(email="generated.client@example.com", organization=make_org(title="Generated Org"))
    return user, Token.objects.get_or_create(user=user)[0].key


def test_every_generated_python_module_imports(python_client):
    import pkgutil

    modules = [info.name for info in pkgutil.walk_packages(python_client.__path__, "lsexport_client.")]
    assert len(modules) > 40
    for name in modules:
        importlib.import_module(name)


def test_python_client_runs_the_flow(python_client, live_server, token_user):
    user, key = token_user
    facts = python_flow.run(live_server.url, key)
    assert user.active_organization.projects.filter(pk__in=[facts["project"], facts["copy"]]).count() == 2


def _node_or_skip() -> tuple[str, str]:
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        reason = "the TypeScript client check needs Node.js 20.19+ with npm"
        if os.environ.get("REQUIRE_TS_CLIENT") == "1":
            pytest.fail(f"REQUIRE_TS_CLIENT=1 but {reason}")
        pytest.skip(reason)
    return node, npm


def test_typescript_client_runs_the_flow(live_server, token_user):
    node, npm = _node_or_skip()
    if not (TS_DIR / "node_modules" / ".package-lock.json").exists():
        _run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=TS_DIR)
    shutil.rmtree(TS_DIR / "generated", ignore_errors=True)
    shutil.rmtree(TS_DIR / "dist", ignore_errors=True)
    _quiet(_run([npm, "run", "--silent", "generate"], cwd=TS_DIR))
    _run([npm, "run", "--silent", "build"], cwd=TS_DIR)  # tsc with "strict": true; any type error fails here
    user, key = token_user
    output = _run([node, "dist/flow.js", live_server.url, key], cwd=TS_DIR, timeout=120)
    assert "flow completed" in output, output
    assert user.active_organization.projects.count() == 2
