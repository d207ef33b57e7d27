"""Provisioning (role provisioner): ``/v1/trust-anchors``, ``/v1/reference-values`` and
``/v1/policies``, one router each, built by :func:`make_router`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool

from devattest.service.deps import Caller, Ctx, Now
from devattest.service.routes._common import errors, read_body
from devattest.service.schemas import ProvisionedPublic, ProvisionedSubmitted
from devattest.service.services.material import ACCEPTED

Name = Annotated[str, Path(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._:@-]+$")]
Version = Annotated[int, Path(ge=1, le=2**31 - 1)]


def make_router(kind: str, title: str) -> APIRouter:
    """The router for one kind of provisioned material."""
    router = APIRouter(prefix=f"/v1/{kind}", tags=["provisioning"])
    body_doc = {"requestBody": {"required": True, "content": {
        mt: {"schema": {"type": "string", "format": "binary"}} for mt in sorted(ACCEPTED[kind])}}}

    @router.post("", responses={201: {"model": ProvisionedSubmitted},
                                **errors(400, 403, 413, 415, 422)},
                 openapi_extra=body_doc, name=f"submit_{kind}",
                 summary=f"Submit {title}")
    async def submit(request: Request, ctx: Ctx, caller: Caller, now: Now,
                     response: Response,
                     name: Annotated[str | None, Query(min_length=1, max_length=200,
                                                       pattern=r"^[A-Za-z0-9._:@-]+$")] = None
                     ) -> ProvisionedSubmitted:
        """Store a new version; re-submitting the latest content is idempotent (200)."""
        caller.require("provisioner")
        content = await read_body(request, ctx.settings.max_body_bytes)
        record, created = await run_in_threadpool(lambda: ctx.provisioning.submit(
            kind, name=name, media_type=request.headers.get("content-type", ""),
            content=content, now=now))
        response.status_code = 201 if created else 200
        return ProvisionedSubmitted(**ProvisionedPublic.model_validate(record).model_dump(),
                                    created=created)

    @router.get("", name=f"list_{kind}", summary=f"List {title}", responses=errors(403))
    def list_all(ctx: Ctx, caller: Caller) -> list[ProvisionedPublic]:
        """The latest live version of every name."""
        caller.require("provisioner")
        return [ProvisionedPublic.model_validate(r) for r in ctx.provisioning.list(kind)]

    @router.get("/{name}", name=f"get_{kind}", summary=f"Get {title}",
                responses=errors(403, 404))
    def get_latest(name: Name, ctx: Ctx, caller: Caller) -> ProvisionedPublic:
        """The latest version of ``name``."""
        caller.require("provisioner")
        return ProvisionedPublic.model_validate(ctx.provisioning.get(kind, name))

    @router.get("/{name}/versions", name=f"versions_{kind}", responses=errors(403, 404))
    def versions(name: Name, ctx: Ctx, caller: Caller) -> list[ProvisionedPublic]:
        """Every live version of ``name``, newest first."""
        caller.require("provisioner")
        return [ProvisionedPublic.model_validate(r)
                for r in ctx.provisioning.versions(kind, name)]

    @router.get("/{name}/versions/{version}/content", name=f"content_{kind}",
                response_class=Response, responses=errors(403, 404))
    def content(name: Name, version: Version, ctx: Ctx, caller: Caller) -> Response:
        """The stored document, byte for byte, with its media type."""
        caller.require("provisioner")
        r = ctx.provisioning.get(kind, name, version)
        return Response(r.content, media_type=r.media_type)

    @router.delete("/{name}", status_code=204, name=f"delete_{kind}",
                   responses=errors(403, 404))
    def delete(name: Name, ctx: Ctx, caller: Caller, now: Now,
               version: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None) -> Response:
        """Delete one version, or all versions, of ``name``."""
        caller.require("provisioner")
        ctx.provisioning.delete(kind, name, now=now, version=version)
        return Response(status_code=204)

    return router


trust_anchors = make_router("trust-anchors", "Trust Anchors")
reference_values = make_router("reference-values", "Reference Values")
policies = make_router("policies", "Appraisal Policies")
