"""Issue 13, defect 7: slow clients were held open indefinitely (300 held for 30 s): nothing
bounded the time to send a request head or a body. A real uvicorn server on a socket with
:class:`BoundedHttpToolsProtocol` (1 s bounds here) disconnects them; the assertions allow a
generous margin and measure nothing else (speed is for benchmarks)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn

from devattest.service.http import MAX_HEAD_BYTES, BoundedHttpToolsProtocol

BOUND = 1.0
#: Far more than the bound: a loaded machine must not make the tests flaky.
GENEROUS = 15.0


class _OneSecond(BoundedHttpToolsProtocol):
    header_timeout = BOUND
    body_timeout = BOUND


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        body += message.get("body", b"")
        if not message.get("more_body", False):
            break
    out = b"got %d" % len(body)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(out)).encode())]})
    await send({"type": "http.response.body", "body": out})


@pytest.fixture
def server() -> Iterator[int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(_app, http=_OneSecond, lifespan="off", log_level="warning",
                            loop="asyncio")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(srv.serve(sockets=[sock])),
                              daemon=True)
    thread.start()
    deadline = time.monotonic() + GENEROUS
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert srv.started
    try:
        yield port
    finally:
        srv.should_exit = True
        thread.join(GENEROUS)
        sock.close()


def _closed_within(conn: socket.socket, seconds: float, *, trickle: bytes = b"") -> bool:
    """Whether the server closes ``conn`` within ``seconds`` while the client sends
    ``trickle`` (one byte string) every 0.1 s."""
    conn.settimeout(0.1)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if trickle:
                conn.sendall(trickle)
            data = conn.recv(4096)
            if data == b"" or b"431" in data:
                return True
        except TimeoutError:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return True
    return False


def test_slowloris_client_trickling_its_headers_is_disconnected(server: int) -> None:
    with socket.create_connection(("127.0.0.1", server)) as conn:
        conn.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        assert _closed_within(conn, GENEROUS, trickle=b"X-a: b\r\n")
        assert time.monotonic() - started < GENEROUS


def test_client_that_connects_and_sends_nothing_is_disconnected(server: int) -> None:
    with socket.create_connection(("127.0.0.1", server)) as conn:
        assert _closed_within(conn, GENEROUS)


def test_client_that_stalls_its_body_is_disconnected(server: int) -> None:
    with socket.create_connection(("127.0.0.1", server)) as conn:
        conn.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" + b"a" * 10)
        assert _closed_within(conn, GENEROUS, trickle=b"a")


def test_oversized_request_head_is_refused_with_431(server: int) -> None:
    with socket.create_connection(("127.0.0.1", server)) as conn:
        conn.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        line = b"X-Filler: " + b"f" * 1000 + b"\r\n"
        try:
            for _ in range(MAX_HEAD_BYTES // len(line) + 2):
                conn.sendall(line)
        except (ConnectionResetError, BrokenPipeError):
            pass
        conn.settimeout(GENEROUS)
        # Reset before the answer was read: refused all the same (a server that kept the
        # connection open would time out here).
        with contextlib.suppress(ConnectionResetError):
            assert conn.recv(4096).startswith(b"HTTP/1.1 431")


def test_prompt_clients_are_served_and_kept_alive(server: int) -> None:
    with socket.create_connection(("127.0.0.1", server)) as conn:
        conn.settimeout(GENEROUS)
        for _ in range(3):  # one connection, several requests, each well within the bounds
            conn.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello")
            reply = b""
            while not reply.endswith(b"got 5"):
                chunk = conn.recv(4096)
                assert chunk, "closed"
                reply += chunk
            assert reply.startswith(b"HTTP/1.1 200")
