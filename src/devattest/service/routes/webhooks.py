"""Webhook subscriptions (admin, relying-party): ``/v1/webhooks``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from devattest.service.deps import Caller, Ctx, Now
from devattest.service.routes._common import errors
from devattest.service.schemas import (
    DeadLetterPublic,
    DeliveryPublic,
    WebhookCreate,
    WebhookCreated,
    WebhookPublic,
)

router = APIRouter(prefix="/v1/webhooks", tags=["notifications"])
HookId = Annotated[str, Path(pattern=r"^[0-9a-f]{16}$")]


@router.post("", status_code=201, responses=errors(400, 403))
def create_webhook(body: WebhookCreate, ctx: Ctx, caller: Caller, now: Now) -> WebhookCreated:
    """Subscribe to ``device.status_changed``; the HMAC secret is shown once."""
    caller.require("relying-party")
    hook = ctx.webhooks.create(url=body.url, secret=body.secret, now=now)
    return WebhookCreated(**WebhookPublic.model_validate(hook).model_dump(), secret=hook.secret)


@router.get("", responses=errors(403))
def list_webhooks(ctx: Ctx, caller: Caller) -> list[WebhookPublic]:
    """Every subscription."""
    caller.require("relying-party")
    return [WebhookPublic.model_validate(h) for h in ctx.webhooks.list()]


@router.delete("/{hook_id}", status_code=204, responses=errors(403, 404))
def delete_webhook(hook_id: HookId, ctx: Ctx, caller: Caller) -> Response:
    """Unsubscribe."""
    caller.require("relying-party")
    ctx.webhooks.delete(hook_id)
    return Response(status_code=204)


@router.get("/{hook_id}/deliveries", responses=errors(403))
def deliveries(hook_id: HookId, ctx: Ctx, caller: Caller) -> list[DeliveryPublic]:
    """Recent deliveries of a subscription."""
    caller.require("relying-party")
    return [DeliveryPublic.model_validate(d) for d in ctx.webhooks.deliveries(hook_id)]


@router.get("/-/dead-letters", responses=errors(403))
def dead_letters(ctx: Ctx, caller: Caller) -> list[DeadLetterPublic]:
    """Deliveries that exhausted their retries."""
    caller.require("relying-party")
    return [DeadLetterPublic.model_validate(d) for d in ctx.webhooks.dead_letters()]
