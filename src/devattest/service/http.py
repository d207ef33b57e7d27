"""uvicorn's httptools protocol with bounds on slow and oversized request heads and bodies
(issue 13, defect 7: 300 slow clients were held open for 30 s, nothing timed them out).

uvicorn bounds only the idle time between requests on a kept-alive connection
(``timeout_keep_alive``, 5 s). A request head is unbounded in time and size with httptools,
and a body is read for as long as the client trickles it. :class:`BoundedHttpToolsProtocol`
(``devattest serve`` uses it, and :class:`~devattest.service.tls.TlsHttpToolsProtocol`
derives from it) adds, per connection:

* a **head timeout** (``http_header_timeout_seconds``, default 10 s): from the connection
  (or from the first byte of a kept-alive connection's next request) until the head is
  complete; a client that has not sent a whole head by then is disconnected;
* a **head size bound** (64 KiB): a head that grows past it is answered 431 and closed;
* a **body timeout** (``http_body_timeout_seconds``, default 30 s): from the end of the head
  until the end of the body; a client still sending by then is disconnected (the
  application sees ``http.disconnect``, and a cut body is never appraised).

Timing out in the protocol, not in an ASGI middleware: the application is only called once
the head is complete, so a middleware cannot see a slow head at all.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

#: The largest request head (request line and headers) accepted, in bytes.
MAX_HEAD_BYTES = 64 * 1024

_431 = (b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n"
        b"connection: close\r\n\r\n")


@functools.cache
def _configured_timeouts() -> tuple[float, float]:
    """The settings' head and body timeouts (read once per process, from the environment
    ``devattest serve`` hands its workers)."""
    from devattest.service.settings import Settings

    s = Settings()
    return s.http_header_timeout_seconds, s.http_body_timeout_seconds


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with head and body timeouts and a head size bound.

    ``header_timeout`` and ``body_timeout`` (seconds) default to the settings; a subclass
    may fix them (tests do).
    """

    header_timeout: float | None = None
    body_timeout: float | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.header_timeout is None or self.body_timeout is None:
            head, body = _configured_timeouts()
            self._head_limit = self.header_timeout if self.header_timeout is not None else head
            self._body_limit = self.body_timeout if self.body_timeout is not None else body
        else:
            self._head_limit, self._body_limit = self.header_timeout, self.body_timeout
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._head_bytes = 0

    # -- connection -----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._head_timer is not None:  # the head is still incomplete after these bytes
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                self._refuse_head()

    # -- parser callbacks -----------------------------------------------------------------
    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._head_timer is None:  # a kept-alive connection's next request
            self._arm_head()

    def on_headers_complete(self) -> None:
        self._cancel_head()
        super().on_headers_complete()
        if self._body_timer is None:
            self._body_timer = self.loop.call_later(self._body_limit, self._too_slow)

    def on_message_complete(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        super().on_message_complete()

    # -- timers ---------------------------------------------------------------------------
    def _arm_head(self) -> None:
        self._head_bytes = 0
        self._head_timer = self.loop.call_later(self._head_limit, self._too_slow)

    def _cancel_head(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _cancel_timers(self) -> None:
        self._cancel_head()
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _too_slow(self) -> None:
        """The head or the body did not arrive in time: disconnect the client."""
        self._cancel_timers()
        if not self.transport.is_closing():
            self.logger.info("closing a connection whose request arrived too slowly")
            self.transport.close()

    def _refuse_head(self) -> None:
        self._cancel_timers()
        if not self.transport.is_closing():
            self.transport.write(_431)
            self.transport.close()


__all__ = ["MAX_HEAD_BYTES", "BoundedHttpToolsProtocol"]
