"""API tokens (admin only): ``/v1/tokens``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from devattest.service.deps import Caller, Ctx, Now
from devattest.service.routes._common import errors
from devattest.service.schemas import TokenCreate, TokenCreated, TokenPublic

router = APIRouter(prefix="/v1/tokens", tags=["admin"])


@router.post("", status_code=201, responses=errors(400, 403, 404))
def create_token(body: TokenCreate, ctx: Ctx, caller: Caller, now: Now) -> TokenCreated:
    """Create a token; its plaintext is in this response only."""
    caller.require()
    record, plaintext = ctx.tokens.create(role=body.role, device_id=body.device_id,
                                          label=body.label, now=now)
    return TokenCreated(**TokenPublic.model_validate(record).model_dump(), token=plaintext)


@router.get("", responses=errors(403))
def list_tokens(ctx: Ctx, caller: Caller) -> list[TokenPublic]:
    """Every token, without secrets."""
    caller.require()
    return [TokenPublic.model_validate(t) for t in ctx.tokens.list()]


@router.delete("/{token_id}", status_code=204, responses=errors(403, 404))
def revoke_token(token_id: Annotated[str, Path(pattern=r"^[0-9a-f]{16}$")], ctx: Ctx,
                 caller: Caller, now: Now) -> Response:
    """Revoke a token (other replicas stop accepting it within ``auth_cache_seconds``)."""
    caller.require()
    ctx.tokens.revoke(token_id, now=now)
    ctx.auth.forget()
    return Response(status_code=204)
