"""read_ahead without a database: the threaded path PostgreSQL takes outside transactions."""

import pytest


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
