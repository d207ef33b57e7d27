"""The retention job: prune history and other growing tables on a schedule."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from devattest.errors import StoreError
from devattest.service.services._background import BackgroundThread
from devattest.store import PruneReport, RetentionPolicy, Store, prune

_log = logging.getLogger("devattest.service.retention")


def run_retention(store: Store, policy: RetentionPolicy, *, now: datetime) -> PruneReport:
    """Apply the retention policy once, in one transaction.

    Raises:
        StoreError: the database failed.
    """
    with store.write() as s:
        return prune(s, policy, now=now)


class RetentionJob(BackgroundThread):
    """A background thread running :func:`run_retention` every ``interval`` seconds (the
    first run is one interval after :meth:`start`)."""

    def __init__(self, store: Store, policy: RetentionPolicy, *, interval: float) -> None:
        super().__init__("devattest-retention")
        self._store = store
        self._policy = policy
        self._interval = interval

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                report = run_retention(self._store, self._policy, now=datetime.now(UTC))
                _log.info("retention", extra={"attestations": report.attestations,
                                              "challenges": report.challenges,
                                              "receipts": report.receipts,
                                              "deliveries": report.deliveries})
            except StoreError:
                _log.exception("retention failed")
