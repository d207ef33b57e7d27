"""The retention job: prune history and other growing tables on a schedule."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime

from devattest.errors import StoreError
from devattest.store import PruneReport, RetentionPolicy, Store, prune

_log = logging.getLogger("devattest.service.retention")


def run_retention(store: Store, policy: RetentionPolicy, *, now: datetime) -> PruneReport:
    """Apply the retention policy once, in one transaction.

    Raises:
        StoreError: the database failed.
    """
    with store.write() as s:
        return prune(s, policy, now=now)


class RetentionJob:
    """A background thread running :func:`run_retention` every ``interval`` seconds."""

    def __init__(self, store: Store, policy: RetentionPolicy, *, interval: float) -> None:
        self._store = store
        self._policy = policy
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread (the first run is one interval after start-up)."""
        self._thread = threading.Thread(target=self._run, name="devattest-retention",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop and wait for the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                report = run_retention(self._store, self._policy, now=datetime.now(UTC))
                _log.info("retention", extra={"attestations": report.attestations,
                                              "challenges": report.challenges,
                                              "deliveries": report.deliveries})
            except StoreError:
                _log.exception("retention failed")
