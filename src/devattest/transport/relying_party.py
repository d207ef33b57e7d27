"""Relying-party quarantine hooks.

A quarantine hook sees every posture change the coordinator commits after an attestation
result and returns a reason to quarantine the device, or None. Two are provided:

* :func:`devattest.transport.coordinator.quarantine_when_untrusted` (in-process, the
  default): a failed attestation quarantines;
* :class:`HttpQuarantineHook`: asks a relying party's endpoint. The change is POSTed as JSON,
  signed like the service's webhooks (``X-Devattest-Timestamp`` and
  ``X-Devattest-Signature: sha256=HMAC(secret, "<timestamp>.<body>")``), and the device is
  quarantined when the answer is ``{"quarantine": true, "reason": "..."}``. Any failure
  (timeout, non-2xx, malformed answer) quarantines nothing and is logged: the relying party
  decides, the Verifier does not guess.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import httpx

from devattest.service.services.webhooks import signature
from devattest.transport.coordinator import PostureChange

_log = logging.getLogger("devattest.transport.relying_party")


class HttpQuarantineHook:
    """Ask a relying party whether a posture change should quarantine the device.

    Args:
        url: the relying party's endpoint (http or https).
        secret: the HMAC key shared with it.
        postures: only changes to these postures are sent (default: untrusted, overdue).
        timeout: seconds per request.
        client: an ``httpx.Client`` to use (tests pass one with a mock transport).
    """

    def __init__(self, url: str, *, secret: str,
                 postures: frozenset[str] = frozenset({"untrusted", "overdue"}),
                 timeout: float = 5.0, client: httpx.Client | None = None) -> None:
        self.url = url
        self._secret = secret
        self._postures = postures
        self._client = client or httpx.Client(timeout=timeout)

    def __call__(self, change: PostureChange) -> str | None:
        if change.posture.posture.value not in self._postures:
            return None
        body = json.dumps(change.as_message(), sort_keys=True, separators=(",", ":")).encode()
        ts = int(time.time())
        try:
            resp = self._client.post(self.url, content=body, headers={
                "Content-Type": "application/json",
                "X-Devattest-Event": "device.posture_changed",
                "X-Devattest-Timestamp": str(ts),
                "X-Devattest-Signature": signature(self._secret, ts, body)})
            resp.raise_for_status()
            answer: Any = resp.json()
        except (httpx.HTTPError, ValueError) as exc:
            _log.warning("quarantine hook %s failed for %s: %s", self.url, change.device_id,
                         exc)
            return None
        if isinstance(answer, dict) and answer.get("quarantine") is True:
            reason = answer.get("reason")
            return str(reason)[:500] if reason else f"quarantined by {self.url}"
        return None
