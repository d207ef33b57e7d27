"""Webhook destinations and receiver checks: a relying party names the URL and the Verifier
sends the request from inside the operator's network, so webhooks must not become a way to
reach internal services (server-side request forgery), and a captured delivery must not be
replayable to the receiver. Real HTTP receivers on loopback; names are resolved through a
patched resolver so that no test needs DNS."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import HTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from devattest.service.metrics import Metrics
from devattest.service.problems import BadRequest
from devattest.service.services import webhooks as webhooks_module
from devattest.service.services.webhooks import (
    WebhookService,
    WebhookWorker,
    parse_networks,
    signature,
    verify_signature,
)
from devattest.store import Store, WebhookRepository, open_store
from tests.integration.service._sim import Receiver

LOOPBACK = parse_networks(["127.0.0.0/8"])
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)




@pytest.fixture
def receiver() -> Iterator[int]:
    server = HTTPServer(("127.0.0.1", 0), Receiver)
    Receiver.received = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_port
    finally:
        server.shutdown()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = open_store(f"sqlite:///{tmp_path / 'hooks.db'}")
    try:
        yield s
    finally:
        s.dispose()


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """Names the webhook module resolves, with the addresses they resolve to."""
    table: dict[str, list[str]] = {}
    real = socket.getaddrinfo

    def getaddrinfo(host: str, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host in table:
            return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6,
                     "", (a, port)) for a in table[host]]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(webhooks_module.socket, "getaddrinfo", getaddrinfo)
    return table


@pytest.mark.parametrize("url", [
    "http://169.254.169.254/latest/meta-data/",  # cloud instance metadata (link-local)
    "http://127.0.0.1:5432/",  # a database on the Verifier's own host
    "http://[::1]:8080/",
    "http://[::ffff:127.0.0.1]/",  # loopback spelled as IPv4-mapped IPv6
    "http://10.1.2.3/internal",
    "http://192.168.0.1/router",
    "http://0.0.0.0/",
    "http://224.0.0.1/",
])
def test_webhook_to_an_internal_address_is_refused(store: Store, url: str) -> None:
    with pytest.raises(BadRequest) as err:
        WebhookService(store).create(url=url, secret=None, now=NOW)
    assert err.value.error_code == "webhook_destination_refused"


def test_webhook_to_a_name_that_resolves_inside_is_refused(
        store: Store, fake_dns: dict[str, list[str]]) -> None:
    fake_dns["hooks.example.com"] = ["93.184.216.34", "10.0.0.7"]  # one inside is enough
    with pytest.raises(BadRequest) as err:
        WebhookService(store).create(url="https://hooks.example.com/h", secret=None, now=NOW)
    assert "10.0.0.7" in err.value.message
    fake_dns["public.example.com"] = ["93.184.216.34"]
    hook = WebhookService(store).create(url="https://public.example.com/h", secret=None,
                                        now=NOW)
    assert hook.url == "https://public.example.com/h"


def test_operator_listed_network_may_be_targeted(store: Store, receiver: int) -> None:
    service = WebhookService(store, allowed_networks=LOOPBACK)
    hook = service.create(url=f"http://127.0.0.1:{receiver}/h", secret=None, now=NOW)
    assert hook.id
    with pytest.raises(BadRequest):  # only the listed network
        service.create(url="http://10.0.0.1/h", secret=None, now=NOW)


def _deliver(store: Store, allowed: Any) -> str | None:
    with store.write() as s:
        WebhookRepository(s).enqueue(event="device.status_changed", payload='{"x":1}',
                                     now=NOW)
    worker = WebhookWorker(store, Metrics(), max_attempts=3, backoff=1, timeout=2, poll=1,
                           allowed_networks=allowed)
    with httpx.Client(timeout=2, follow_redirects=False) as client:
        assert worker.run_once(client, now=NOW) == 1
    with store.read() as s:
        return WebhookRepository(s).deliveries()[0].last_error


def test_delivery_rechecks_a_name_that_now_resolves_inside(
        store: Store, receiver: int, fake_dns: dict[str, list[str]]) -> None:
    """DNS rebinding: the name resolved to a public address when the webhook was created and
    resolves to loopback at delivery; nothing may be sent."""
    fake_dns["rebind.example.com"] = ["93.184.216.34"]
    WebhookService(store).create(url=f"http://rebind.example.com:{receiver}/h", secret=None,
                                 now=NOW)
    fake_dns["rebind.example.com"] = ["127.0.0.1"]
    error = _deliver(store, allowed=())
    assert error is not None and error.startswith("destination refused")
    assert Receiver.received == []


def test_delivery_connects_to_the_checked_address_and_keeps_the_name(
        store: Store, receiver: int, fake_dns: dict[str, list[str]]) -> None:
    fake_dns["rp.internal.test"] = ["127.0.0.1"]
    WebhookService(store, allowed_networks=LOOPBACK).create(
        url=f"http://rp.internal.test:{receiver}/hook?x=1", secret="s" * 32, now=NOW)
    assert _deliver(store, allowed=LOOPBACK) is None
    (headers, body), = Receiver.received
    assert headers["Host"] == f"rp.internal.test:{receiver}"
    ts = int(headers["X-Devattest-Timestamp"])
    assert headers["X-Devattest-Signature"] == signature("s" * 32, ts, body)


def test_replayed_webhook_delivery_is_rejected_by_the_receiver_check() -> None:
    body = b'{"event":"device.status_changed"}'
    ts = 1_800_000_000
    header = signature("k" * 32, ts, body)
    assert verify_signature("k" * 32, ts, body, header, now=ts + 10)
    assert not verify_signature("k" * 32, ts, body, header, now=ts + 3600)  # replayed later
    assert not verify_signature("k" * 32, ts, body, header, now=ts - 3600)  # from the future
    assert not verify_signature("k" * 32, ts, body + b" ", header, now=ts)


def _tls_files(tmp_path: Path, name: str) -> tuple[Path, Path]:
    from datetime import timedelta

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(datetime.now(UTC) - timedelta(hours=1))
            .not_valid_after(datetime.now(UTC) + timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "tls.crt", tmp_path / "tls.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_https_delivery_to_the_checked_address_verifies_the_certificate_for_the_name(
        store: Store, tmp_path: Path, fake_dns: dict[str, list[str]]) -> None:
    """Connecting to the pinned address must not weaken TLS: the certificate is checked
    against the URL's name (SNI), and one for another name is refused."""
    import ssl

    cert, key = _tls_files(tmp_path, "rp.internal.test")
    server = HTTPServer(("127.0.0.1", 0), Receiver)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    server.socket = tls.wrap_socket(server.socket, server_side=True)
    Receiver.received = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        fake_dns["rp.internal.test"] = ["127.0.0.1"]
        fake_dns["other.internal.test"] = ["127.0.0.1"]
        service = WebhookService(store, allowed_networks=LOOPBACK)
        port = server.server_port
        service.create(url=f"https://rp.internal.test:{port}/h", secret=None, now=NOW)
        worker = WebhookWorker(store, Metrics(), max_attempts=3, backoff=1, timeout=2,
                               poll=1, allowed_networks=LOOPBACK)
        with store.write() as s:
            WebhookRepository(s).enqueue(event="e", payload="{}", now=NOW)
        client_tls = ssl.create_default_context(cafile=str(cert))
        with httpx.Client(timeout=2, verify=client_tls) as client:
            worker.run_once(client, now=NOW)
        with store.read() as s:
            assert WebhookRepository(s).deliveries()[0].last_error is None
        assert len(Receiver.received) == 1
        # The same server under a name its certificate does not carry: refused.
        service.create(url=f"https://other.internal.test:{port}/h", secret=None, now=NOW)
        with store.write() as s:
            WebhookRepository(s).enqueue(event="e", payload="{}", now=NOW)
        with httpx.Client(timeout=2, verify=client_tls) as client:
            worker.run_once(client, now=NOW)
        with store.read() as s:
            errors = [d.last_error for d in WebhookRepository(s).deliveries()]
        assert any(e and "CERTIFICATE_VERIFY_FAILED" in e for e in errors), errors
    finally:
        server.shutdown()
