"""Test-only, never imported by the service: the e2e suite loads it into its workers with
`celery -A config worker --include tests.e2e.slowdown`.

Each batch a snapshot writes first waits for the number of seconds written in the file that E2E_DELAY_FILE
names (no wait when the file is missing or empty), so the suite can make a snapshot last long enough to
interrupt it. The job still renews its lease as usual while it waits.
"""

import os
import time
from pathlib import Path

from exports.snapshot import SnapshotWriter

# Every way of writing tasks (the snapshot job, its parts, the streamed easy export) reads them through this one.
_encoded_task_batches = SnapshotWriter.encoded_task_batches


def batch_delay() -> float:
    try:
        return float(Path(os.environ["E2E_DELAY_FILE"]).read_text().strip() or 0)
    except (KeyError, OSError, ValueError):
        return 0.0


def slow_encoded_task_batches(self):
    for batch in _encoded_task_batches(self):
        delay = batch_delay()
        if delay:
            time.sleep(delay)
        yield batch


SnapshotWriter.encoded_task_batches = slow_encoded_task_batches
