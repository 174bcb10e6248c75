"""Resident memory of benchmark processes, read from /proc: one process, a process and its children, and the peak
while a measurement runs."""

import threading
from pathlib import Path

__all__ = ["PeakRss", "process_tree", "rss_mb"]


def rss_mb(pid: int) -> float:
    """The resident memory of one process in MB; 0 when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def process_tree(pid: int) -> list[int]:
    """The process and all its descendants."""
    found = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return found
    for child in children:
        found += process_tree(int(child))
    return found


class PeakRss:
    """Samples the resident memory of some processes every `interval` seconds while a measurement runs: the peak of
    each process and the peak of their sum."""

    def __init__(self, pids: list[int], interval: float = 0.02):
        self.pids = pids
        self.interval = interval
        self.start = {pid: rss_mb(pid) for pid in pids}
        self.peak = dict(self.start)
        self.before = sum(self.start.values())
        self.peak_total = self.before
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            sample = {pid: rss_mb(pid) for pid in self.pids}
            for pid, value in sample.items():
                self.peak[pid] = max(self.peak[pid], value)
            self.peak_total = max(self.peak_total, sum(sample.values()))

    def __enter__(self) -> "PeakRss":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def growth_mb(self) -> float:
        """The largest growth of any one process."""
        return round(max(self.peak[pid] - self.start[pid] for pid in self.pids), 1)

    def figures(self) -> dict:
        """The processes together: before, peak and growth."""
        return {
            "rss_before_mb": round(self.before, 1),
            "rss_peak_mb": round(self.peak_total, 1),
            "rss_growth_mb": round(self.peak_total - self.before, 1),
        }
