"""A private Mosquitto broker for integration tests (a pytest plugin listed in
``tests/integration/conftest.py``).

* ``mosquitto`` - a fresh private broker on a free port per test (anonymous access); tests
  that restart the broker use this one, never a shared broker;
* ``mosquitto_session`` - one private anonymous broker shared by the session;
* ``mosquitto_with_passwords`` - a private broker with a password file (users ``service``
  and ``dev-1``, passwords ``service-secret`` and ``dev-1-secret``) and an ACL that lets a
  device publish only under its own topic.

Tests are skipped (not failed) when mosquitto is not installed.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devattest.transport.broker import EmbeddedMosquitto, mosquitto_binary

USERS = {"service": "service-secret", "dev-1": "dev-1-secret", "dev-2": "dev-2-secret"}

#: Devices (user name = device id) may publish events/evidence and read challenges/results
#: under their own id only; the service user may do everything under devattest/.
ACL = """\
user service
topic readwrite devattest/#
topic read $share/devattest/#

pattern write devattest/v1/%u/events
pattern write devattest/v1/%u/evidence
pattern read devattest/v1/%u/challenge
pattern read devattest/v1/%u/result
pattern read devattest/v1/%u/status
"""


def _require() -> None:
    if mosquitto_binary() is None:
        pytest.skip("mosquitto is not installed")


@pytest.fixture
def mosquitto() -> Iterator[EmbeddedMosquitto]:
    """A private anonymous broker for one test (it may restart it)."""
    _require()
    with EmbeddedMosquitto() as broker:
        yield broker


@pytest.fixture(scope="session")
def mosquitto_session() -> Iterator[EmbeddedMosquitto]:
    """A private anonymous broker shared by the session (never restarted)."""
    _require()
    with EmbeddedMosquitto() as broker:
        yield broker


@pytest.fixture
def mosquitto_with_passwords() -> Iterator[EmbeddedMosquitto]:
    """A private broker with a password file and per-device ACLs."""
    _require()
    with EmbeddedMosquitto(users=USERS, acl=ACL) as broker:
        yield broker
