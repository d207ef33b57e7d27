"""Administration: ``POST /v1/admin/retention`` runs the retention policy now."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool

from devattest.service.deps import Caller, Ctx, Now
from devattest.service.routes._common import errors
from devattest.service.schemas import RetentionReport
from devattest.service.services.retention import run_retention

router = APIRouter(prefix="/v1/admin", tags=["admin"])


@router.post("/retention", responses=errors(403))
async def retention(ctx: Ctx, caller: Caller, now: Now) -> RetentionReport:
    """Prune history, challenges, Evidence receipts and deliveries per the configured
    retention policy."""
    caller.require()
    report = await run_in_threadpool(run_retention, ctx.store, ctx.retention_policy, now=now)
    return RetentionReport(attestations=report.attestations, challenges=report.challenges,
                           receipts=report.receipts, deliveries=report.deliveries)
