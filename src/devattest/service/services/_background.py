"""A named daemon thread with a stop flag: what the service's background jobs share."""

from __future__ import annotations

import threading


class BackgroundThread:
    """Subclasses implement :meth:`_run` and poll ``self._stop``.

    Args:
        name: the thread's name (shown in thread dumps and per-thread CPU figures).
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread."""
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop and wait for the thread (at most ten seconds)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        raise NotImplementedError
