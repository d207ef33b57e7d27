"""Device lifecycle: states, events that make attestation due, overdue and stale detection,
posture per device and fleet aggregates.

Pure: no I/O, no clock (``now`` is an argument). Persistence lives in
``devattest.store.lifecycle_repo``; MQTT in ``devattest.transport``.
"""

from devattest.lifecycle.fleet import Dimension, FleetGroup, aggregate, totals
from devattest.lifecycle.machine import (
    MAX_PENDING,
    apply_action,
    apply_event,
    parse_event,
    record_result,
)
from devattest.lifecycle.model import (
    DEFAULT_RULES,
    AttestationDue,
    DeviceLifecycle,
    EventKind,
    LifecycleEvent,
    LifecycleRules,
    LifecycleState,
    OperatorAction,
    Posture,
    ResultSummary,
)
from devattest.lifecycle.posture import (
    DevicePosture,
    assess,
    find_overdue,
    is_overdue,
    is_stale,
    overdue_dues,
)

__all__ = [
    "DEFAULT_RULES",
    "MAX_PENDING",
    "AttestationDue",
    "DeviceLifecycle",
    "DevicePosture",
    "Dimension",
    "EventKind",
    "FleetGroup",
    "LifecycleEvent",
    "LifecycleRules",
    "LifecycleState",
    "OperatorAction",
    "Posture",
    "ResultSummary",
    "aggregate",
    "apply_action",
    "apply_event",
    "assess",
    "find_overdue",
    "is_overdue",
    "is_stale",
    "overdue_dues",
    "parse_event",
    "record_result",
    "totals",
]
