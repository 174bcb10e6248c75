"""The end-to-end stack: a PostgreSQL database of its own, Redis, a gunicorn web server and two real
`celery -A config worker` processes, all started here with short leases and a fast sweep.

Run with `./scripts/test.sh -m e2e tests/e2e` (needs PostgreSQL and Redis; `.ci/run` does it last). A run
without `-m e2e` leaves these tests out.
"""

import secrets
import subprocess

import pytest

from tests.e2e.stack import (
    BROKER_URL,
    DATABASE_URL,
    Stack,
    drop_database,
    pg_command,
    postgres_up,
    reachable,
    recreate_database,
)


def pytest_configure(config):
    config.addinivalue_line("markers", "e2e: end-to-end run against real processes; selected with -m e2e")


def pytest_collection_modifyitems(config, items):
    """Leave e2e tests out unless the marker expression asks for them."""
    if "e2e" in (config.option.markexpr or ""):
        return
    left_out = [item for item in items if item.get_closest_marker("e2e")]
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = [item for item in items if not item.get_closest_marker("e2e")]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed test's report ends with the last lines of every process log of the stack."""
    outcome = yield
    report = outcome.get_result()
    stack = getattr(item, "funcargs", {}).get("stack")
    if report.failed and stack is not None:
        for log in sorted(stack.log_dir.glob("*.log")):
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:])
            report.sections.append((f"{log.name} (last lines)", tail))
    world = getattr(item, "funcargs", {}).get("world")
    if report.failed and hasattr(world, "service"):  # the attach-mode suite
        report.sections.append(("service log (last lines)", "\n".join(world.service.log_text().splitlines()[-60:])))
        report.sections.append(("Label Studio log (last lines)", world.ls.log_tail(40)))


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    missing = [
        name
        for name, ok in (
            (f"PostgreSQL at {DATABASE_URL}", reachable(DATABASE_URL, 5432)),
            (f"Redis at {BROKER_URL}", reachable(BROKER_URL, 6379)),
        )
        if not ok
    ]
    if missing:
        pytest.fail("The e2e suite needs " + " and ".join(missing))
    import redis

    broker = redis.Redis.from_url(BROKER_URL)
    broker.flushdb()
    recreate_database()
    stack = Stack(tmp_path_factory.mktemp("e2e-data"))
    try:
        stack.manage("migrate", "--noinput")
        output = stack.manage(
            "create_user", "--email", "e2e@example.com", "--password", secrets.token_urlsafe(12), "--token", stack.token
        )
        assert output.strip().splitlines()[-1] == stack.token
        stack.start_web()
        stack.start_worker("w1")
        stack.start_worker("w2")
        yield stack
    finally:
        stack.stop_all()
        if not postgres_up() and pg_command("start"):
            subprocess.run(pg_command("start"), check=False)  # never leave the machine without its database
        broker.flushdb()
        broker.close()
        drop_database()
