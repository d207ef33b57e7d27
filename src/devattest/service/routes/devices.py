"""The device inventory and the passport: ``/v1/devices``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from devattest.service.deps import Caller, Ctx, Now
from devattest.service.routes._common import errors, jwt_claims
from devattest.service.schemas import (
    DeviceBinding,
    DeviceCreate,
    DevicePage,
    DevicePublic,
    DeviceUpdate,
    Lifecycle,
    PassportResult,
    StatusName,
)
from devattest.store import DeviceFilter

router = APIRouter(prefix="/v1/devices", tags=["inventory"])
DevicePath = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:@-]+$")]


@router.post("", status_code=201, responses=errors(400, 403, 409))
def create_device(body: DeviceCreate, ctx: Ctx, caller: Caller, now: Now) -> DevicePublic:
    """Register a device (roles: admin, provisioner)."""
    caller.require("provisioner")
    d = ctx.inventory.create_device(device_id=body.id, model=body.model, owner=body.owner,
                                    lifecycle_state=body.lifecycle_state,
                                    instance_id=body.instance_id, now=now)
    return DevicePublic.model_validate(d)


@router.get("", responses=errors(403))
def list_devices(ctx: Ctx, caller: Caller,
                 model: Annotated[str | None, Query(max_length=200)] = None,
                 owner: Annotated[str | None, Query(max_length=200)] = None,
                 lifecycle_state: Lifecycle | None = None, status: StatusName | None = None,
                 after: Annotated[str | None, Query(max_length=128)] = None,
                 limit: Annotated[int, Query(ge=1, le=500)] = 100) -> DevicePage:
    """List devices by id with filters; keyset pagination via ``after``."""
    caller.require("provisioner", "relying-party")
    items = ctx.inventory.list_devices(
        DeviceFilter(model=model, owner=owner, lifecycle_state=lifecycle_state, status=status),
        after=after, limit=limit)
    return DevicePage(items=[DevicePublic.model_validate(d) for d in items],
                      next_after=items[-1].id if len(items) == limit else None)


@router.get("/models", responses=errors(403))
def list_models(ctx: Ctx, caller: Caller) -> list[str]:
    """The device models in the inventory."""
    caller.require("provisioner", "relying-party")
    return ctx.inventory.distinct("model")


@router.get("/owners", responses=errors(403))
def list_owners(ctx: Ctx, caller: Caller) -> list[str]:
    """The device owners in the inventory."""
    caller.require("provisioner", "relying-party")
    return ctx.inventory.distinct("owner")


@router.get("/{device_id}", responses=errors(403, 404))
def get_device(device_id: DevicePath, ctx: Ctx, caller: Caller) -> DevicePublic:
    """One device, with its status and latest result id."""
    caller.require_device_access(device_id, "provisioner", "relying-party")
    return DevicePublic.model_validate(ctx.inventory.get_device(device_id))


@router.patch("/{device_id}", responses=errors(400, 403, 404))
def update_device(device_id: DevicePath, body: DeviceUpdate, ctx: Ctx, caller: Caller,
                  now: Now) -> DevicePublic:
    """Change model, owner, lifecycle state or bound Instance ID (admin, provisioner)."""
    caller.require("provisioner")
    d = ctx.inventory.update_device(device_id, now=now, model=body.model, owner=body.owner,
                                    lifecycle_state=body.lifecycle_state,
                                    instance_id=body.instance_id)
    return DevicePublic.model_validate(d)


@router.post("/{device_id}/binding", responses=errors(400, 403, 404))
def rebind_device(device_id: DevicePath, body: DeviceBinding, ctx: Ctx, caller: Caller,
                  now: Now) -> DevicePublic:
    """Rebind a device to another Instance ID, or unbind it (null) so that its next
    affirming attestation binds it again (admin, provisioner). A device is otherwise bound
    by its first affirming attestation and refuses Evidence from any other identity."""
    caller.require("provisioner")
    return DevicePublic.model_validate(
        ctx.inventory.rebind_device(device_id, instance_id=body.instance_id, now=now))


@router.delete("/{device_id}", status_code=204, responses=errors(403, 404))
def delete_device(device_id: DevicePath, ctx: Ctx, caller: Caller) -> Response:
    """Remove a device, its tokens and challenges (history is kept until retention)."""
    caller.require()
    ctx.inventory.delete_device(device_id)
    return Response(status_code=204)


@router.get("/{device_id}/result", responses=errors(403, 404))
def latest_result(device_id: DevicePath, ctx: Ctx, caller: Caller, now: Now) -> PassportResult:
    """The passport model: the device's latest unexpired EAR (the device itself may fetch it
    to present to a relying party)."""
    caller.require_device_access(device_id, "relying-party")
    row = ctx.inventory.latest_result(device_id, now=now)
    assert row.ear is not None and row.ear_expires_at is not None
    return PassportResult(attestation_id=row.id, ear=row.ear, result=jwt_claims(row.ear),
                          expires_at=row.ear_expires_at)
