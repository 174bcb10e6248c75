"""read_ahead: the threaded path snapshots take on PostgreSQL outside transactions, without a database and in a real
snapshot."""

import io
import json
import threading

import pytest

from exports.snapshot import SnapshotWriter
from exports.sources.base import TaskSelection
from exports.sources.tables import TableRows
from tests.factories import fill_project, make_project


@pytest.fixture
def as_postgres_outside_transactions(monkeypatch):
    """Let read_ahead take its threaded path whatever the test database is."""
    from django.db import connections

    monkeypatch.setattr(type(connections["default"]), "vendor", "postgresql")


def test_read_ahead_keeps_order_and_reads_in_another_thread(as_postgres_outside_transactions):
    import threading

    from exports.snapshot import read_ahead

    readers = set()

    def batches():
        for number in range(50):
            readers.add(threading.current_thread().name)
            yield number

    assert list(read_ahead(batches())) == list(range(50))
    assert readers == {"snapshot-read-ahead"}


def test_read_ahead_hands_errors_to_the_consumer(as_postgres_outside_transactions):
    from exports.snapshot import read_ahead

    def failing():
        yield 1
        raise ValueError("broken batch")

    reader = read_ahead(failing())
    assert next(reader) == 1
    with pytest.raises(ValueError, match="broken batch"):
        next(reader)


def test_read_ahead_stops_its_thread_when_the_consumer_stops(as_postgres_outside_transactions):
    import threading

    from exports.snapshot import read_ahead

    reader = read_ahead(iter(range(1000)))
    assert next(reader) == 0
    reader.close()
    assert not any(t.name == "snapshot-read-ahead" for t in threading.enumerate())


def write_snapshot(project) -> bytes:
    out = io.BytesIO()
    SnapshotWriter(project=project, batch_size=3, serialization_options={"drafts": {"only_id": False}}).write(out)
    return out.getvalue()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_snapshot_outside_a_transaction_reads_ahead_with_the_same_bytes(user, monkeypatch):
    """The rows of every batch come from the read-ahead thread, and the file is the one the writer's own thread
    would have written."""
    project = make_project(user=user)
    fill_project(project, user=user, count=8)
    readers = set()
    real_tasks = TableRows.tasks

    def tasks(self, **bounds):
        readers.add(threading.current_thread().name)
        return real_tasks(self, **bounds)

    monkeypatch.setattr(TableRows, "tasks", tasks)
    ahead = write_snapshot(project)
    assert readers == {"snapshot-read-ahead"}

    readers.clear()
    monkeypatch.setattr(TableRows, "read_ahead_database", lambda self: None)
    assert write_snapshot(project) == ahead
    assert readers == {threading.current_thread().name}
    assert len(json.loads(ahead)) == 8


@pytest.mark.django_db(transaction=True)
def test_sqlite_reads_in_the_writers_thread(user, db_vendor):
    """SQLite's driver takes the GIL back for every row, so a reader thread would wait on the encoding one."""
    if db_vendor != "sqlite":
        pytest.skip("SQLite only")
    assert TableRows(TaskSelection(project_id=make_project(user=user).pk)).read_ahead_database() is None


@pytest.mark.django_db
def test_no_read_ahead_inside_a_transaction(user):
    """A second connection could not see the transaction's rows (the test's own, here)."""
    assert TableRows(TaskSelection(project_id=make_project(user=user).pk)).read_ahead_database() is None
