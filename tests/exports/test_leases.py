"""The lease owner value: written and read back, split runs, and telling a dead owner on this host."""

import os
import socket
import subprocess

import pytest

from exports.leases import LeaseOwner, held_by_run
from exports.models import Export, Status
from tests.factories import make_project


def test_an_owner_reads_back_what_it_writes():
    owner = LeaseOwner.new()
    assert LeaseOwner.parse(str(owner)) == owner
    assert (owner.host, owner.pid) == (socket.gethostname(), os.getpid())
    parts = LeaseOwner.for_parts(owner.run)
    assert str(parts) == f"parts:{owner.run}"
    assert LeaseOwner.parse(str(parts)) == parts


def test_unreadable_owners_are_none():
    for text in ("", "host", "host:notapid:run", "host:12:"):
        assert LeaseOwner.parse(text) is None


def test_a_joiner_keeps_the_run_of_its_parts():
    claim = LeaseOwner.new()
    joiner = LeaseOwner.new(within=claim.run)
    assert joiner.run != claim.run
    assert joiner.split_run == claim.run == claim.split_run == LeaseOwner.for_parts(claim.run).split_run


def test_only_a_vanished_process_of_this_host_is_dead():
    child = subprocess.Popen(["sleep", "0"])
    child.wait()
    assert LeaseOwner(socket.gethostname(), child.pid, "r").dead_pid() == child.pid
    assert LeaseOwner(socket.gethostname(), os.getpid(), "r").dead_pid() is None
    assert LeaseOwner("another-host", child.pid, "r").dead_pid() is None
    assert LeaseOwner.for_parts("r").dead_pid() is None


@pytest.mark.django_db
def test_held_by_run_matches_every_holder_of_a_run_and_no_other(user):
    project = make_project(user=user)
    run = "abc123"
    matching = [f"h:1:{run}", f"parts:{run}", f"h:1:{run}.def456"]
    other = ["h:1:abc1234", "h:1:xabc123", "", "parts:abc12", f"h:1:{run}x.def456"]
    rows = {
        text: Export.objects.create(project=project, created_by=user, status=Status.IN_PROGRESS, lease_owner=text).pk
        for text in matching + other
    }
    found = set(Export.objects.filter(held_by_run(run)).values_list("pk", flat=True))
    assert found == {rows[text] for text in matching}
