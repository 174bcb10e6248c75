"""exports.webhook_http: which targets a webhook may have, checked again at every delivery, and the connection going
to the address that was checked."""

import socket

import pytest

from exports.webhook_http import Outcome, TargetRefused, check_target, post_json
from tests.exports.webhook_receiver import Receiver

ANSWERS: dict[str, str] = {}


@pytest.fixture(autouse=True)
def fake_dns(monkeypatch):
    """Names in ANSWERS resolve to the address given; a test changes it to play a DNS answer that changed."""
    ANSWERS.clear()
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host in ANSWERS:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ANSWERS[host], port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("file:///etc/passwd", "only http and https URLs are allowed"),
        ("http://a b.example.com/", "the URL contains spaces or control characters"),
        ("http:///path", "the URL has no host"),
        ("http://hooks.example.com:99999/", "the URL has an invalid port"),
        ("http://0.0.0.0/", "the host 0.0.0.0 resolves to a non-public address (0.0.0.0)"),
        ("http://[::ffff:127.0.0.1]/", "the host ::ffff:127.0.0.1 resolves to a non-public address (::ffff:127.0.0.1)"),
        ("http://100.64.0.1/", "the host 100.64.0.1 resolves to a non-public address (100.64.0.1)"),
    ],
)
def test_refused_targets(url, reason):
    with pytest.raises(TargetRefused) as refused:
        check_target(url, allowed=[])
    assert str(refused.value).startswith(reason)


def test_a_listed_address_allows_any_name_that_resolves_to_it():
    ANSWERS["hooks.internal"] = "10.0.0.7"
    with pytest.raises(TargetRefused):
        check_target("http://hooks.internal/", allowed=["10.0.0.8"])
    check_target("http://hooks.internal/", allowed=["10.0.0.7"])
    check_target("http://HOOKS.internal./", allowed=["hooks.internal"])


def test_the_target_is_checked_again_at_delivery(receiver):
    """A name that resolved to a public address when the webhook was saved and now resolves to loopback is
    refused; nothing reaches the receiver."""
    ANSWERS["hooks.example.com"] = "93.184.215.14"
    check_target("http://hooks.example.com/", allowed=[])
    ANSWERS["hooks.example.com"] = "127.0.0.1"
    port = receiver.server.server_address[1]
    outcome = post_json(f"http://hooks.example.com:{port}/hook", b"{}", {}, allowed=[], timeout=2)
    assert outcome.status is None
    assert "non-public address (127.0.0.1)" in outcome.error
    assert outcome.retry is False
    assert receiver.requests == []


def test_the_connection_goes_to_the_checked_address_with_the_name_as_host(receiver):
    ANSWERS["receiver.test"] = "127.0.0.1"
    port = receiver.server.server_address[1]
    outcome = post_json(
        f"http://receiver.test:{port}/hook?x=1", b'{"a": 1}', {"X-A": "b"}, allowed=["receiver.test"], timeout=2
    )
    assert outcome == Outcome(200)
    request = receiver.requests[0]
    assert request.path == "/hook?x=1"
    assert request.headers["Host"] == f"receiver.test:{port}"
    assert request.headers["X-A"] == "b"
    assert request.body == b'{"a": 1}'


def test_a_name_that_does_not_resolve_may_resolve_later():
    outcome = post_json("http://nowhere.invalid/", b"{}", {}, allowed=[], timeout=1)
    assert outcome == Outcome(None, "refused: the host nowhere.invalid does not resolve", retry=True)
