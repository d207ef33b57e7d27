"""The attestation history: ``/v1/attestations``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query

from devattest.service.deps import Caller, Ctx
from devattest.service.routes._common import errors
from devattest.service.schemas import AttestationPublic, HistoryPage, StatusName
from devattest.store import HistoryFilter

router = APIRouter(prefix="/v1/attestations", tags=["history"])


@router.get("", responses=errors(403))
def list_history(ctx: Ctx, caller: Caller,
                 device_id: Annotated[str | None, Query(max_length=128)] = None,
                 status: StatusName | None = None,
                 outcome: Annotated[str | None, Query(max_length=32)] = None,
                 evidence_sha256: Annotated[str | None, Query(pattern=r"^[0-9a-fA-F]{64}$")]
                 = None,
                 since: datetime | None = None, until: datetime | None = None,
                 before: Annotated[int | None, Query(ge=1, le=2**62)] = None,
                 limit: Annotated[int, Query(ge=1, le=500)] = 100) -> HistoryPage:
    """Every submission, newest first, with filters; keyset pagination via ``before``.
    A device token sees only its own device's history."""
    if caller.role == "device":
        device_id = caller.device_id
    else:
        caller.require("relying-party")
    items = ctx.inventory.history(
        HistoryFilter(device_id=device_id, status=status, outcome=outcome,
                      evidence_sha256=evidence_sha256, since=_aware(since),
                      until=_aware(until)), before_id=before, limit=limit)
    return HistoryPage(items=[AttestationPublic.model_validate(r) for r in items],
                       next_before=items[-1].id if len(items) == limit else None)


@router.get("/{attestation_id}", responses=errors(403, 404))
def get_attestation(attestation_id: Annotated[int, Path(ge=1, le=2**62)], ctx: Ctx,
                    caller: Caller) -> AttestationPublic:
    """One history entry."""
    row = ctx.inventory.history_entry(attestation_id)
    caller.require_device_access(row.device_id, "relying-party")
    return AttestationPublic.model_validate(row)


def _aware(t: datetime | None) -> datetime | None:
    from datetime import UTC

    if t is None or t.tzinfo is not None:
        return t
    return t.replace(tzinfo=UTC)
