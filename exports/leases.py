"""Who holds a running job's row: the lease owner value stored in `lease_owner`, and the lease's deadline.

An owner is written `host:pid:run`. The run is unique per claim; host and pid let a sweep on the same host tell
at once that the owning process is gone. While a split snapshot's parts run on workers elsewhere, the row is
held by `parts:<run>`, which names no process, so only the lease's expiry judges it.
"""

import os
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

__all__ = ["PARTS_HOST", "LeaseOwner", "held_by_run", "lease_deadline"]

PARTS_HOST = "parts"


@dataclass(frozen=True)
class LeaseOwner:
    host: str
    pid: int | None
    run: str

    @classmethod
    def new(cls, *, within: str | None = None) -> "LeaseOwner":
        """An owner for a new claim by this process. `within`: the run of a split snapshot whose parts this claim
        joins; the new run extends it, so the parts' folder still counts as in use."""
        run = uuid.uuid4().hex[:12]
        return cls(socket.gethostname(), os.getpid(), f"{within}.{run}" if within else run)

    @classmethod
    def for_parts(cls, run: str) -> "LeaseOwner":
        """The holder of a snapshot whose parts run on workers anywhere: no process, only the run."""
        return cls(PARTS_HOST, None, run)

    @classmethod
    def parse(cls, text: str) -> "LeaseOwner | None":
        """The owner stored as `text`; None for an empty or unreadable value."""
        if text.startswith(f"{PARTS_HOST}:"):
            return cls.for_parts(text.partition(":")[2])
        host, _, rest = text.partition(":")
        pid, _, run = rest.partition(":")
        if not host or not pid.isdigit() or not run:
            return None
        return cls(host, int(pid), run)

    def __str__(self) -> str:
        if self.pid is None:
            return f"{self.host}:{self.run}"
        return f"{self.host}:{self.pid}:{self.run}"

    @property
    def split_run(self) -> str:
        """The run that names a split snapshot's parts folder (a joiner's run extends its parts' run)."""
        return self.run.partition(".")[0]

    def dead_pid(self) -> int | None:
        """The owning pid when it ran on this host and that process no longer exists; None otherwise."""
        if self.pid is None or self.host != socket.gethostname() or self.pid == os.getpid():
            return None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return self.pid
        except PermissionError:
            return None
        return None


def held_by_run(run: str) -> Q:
    """Rows whose lease owner belongs to `run`: its parts' holder, the claiming process, or a joiner."""
    return Q(lease_owner__endswith=f":{run}") | Q(lease_owner__contains=f":{run}.")


def lease_deadline(seconds: float | None = None) -> datetime:
    """When a lease taken or renewed now expires (EXPORT_LEASE_SECONDS unless `seconds` is given)."""
    return timezone.now() + timedelta(seconds=settings.EXPORT_LEASE_SECONDS if seconds is None else seconds)
