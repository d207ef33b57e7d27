"""Challenge-response: ``POST /v1/challenges`` and ``POST /v1/challenges/{id}/evidence``."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Path, Request, Response
from fastapi.concurrency import run_in_threadpool

from devattest.ear import result_to_claims
from devattest.service.deps import Caller, Ctx, Now
from devattest.service.problems import UnsupportedMedia
from devattest.service.routes._common import b64url, errors, read_body
from devattest.service.schemas import ChallengeCreate, ChallengePublic, EvidenceResult

router = APIRouter(prefix="/v1/challenges", tags=["challenge-response"])
ChallengeId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$")]


def _json(value: dict[str, Any], status: int) -> Response:
    """A JSON response serialised once by orjson (the ``response_model`` of each route
    documents the shape; FastAPI passes a Response through without re-validating it)."""
    return Response(orjson.dumps(value, option=orjson.OPT_UTC_Z), status_code=status,
                    media_type="application/json")


@router.post("", status_code=201, response_model=ChallengePublic,
             responses=errors(403, 404, 409, 422))
async def create_challenge(body: ChallengeCreate, ctx: Ctx, caller: Caller, now: Now
                           ) -> Response:
    """Issue a nonce bound to ``device_id`` (roles: relying-party, device for itself)."""
    ch = await run_in_threadpool(lambda: ctx.attestation.issue_challenge(
        caller, device_id=body.device_id, nonce_size=body.nonce_size, now=now))
    return _json({"id": ch.id, "device_id": ch.device_id, "nonce": b64url(ch.nonce),
                  "expires_at": ch.expires_at}, 201)


@router.post("/{challenge_id}/evidence", response_model=EvidenceResult,
             responses=errors(403, 404, 409, 413, 415),
             openapi_extra={"requestBody": {"required": True, "content": {
                 "application/psa-attestation-token": {
                     "schema": {"type": "string", "format": "binary"}},
                 "application/eat+cwt": {"schema": {"type": "string", "format": "binary"}},
             }}})
async def submit_evidence(challenge_id: ChallengeId, request: Request, ctx: Ctx,
                          caller: Caller, now: Now) -> Response:
    """Appraise raw Evidence (the body; its media type as Content-Type) against the
    challenge's nonce. 200 with the EAR whatever the verdict; 409 when the nonce was already
    used or expired (the attempt is recorded as a contraindicated result)."""
    media_type = request.headers.get("content-type", "").strip()
    if not media_type:
        raise UnsupportedMedia("Content-Type must be the Evidence media type")
    # The body is bounded (BodyLimitMiddleware: max_evidence_bytes); the 404/403/415 checks
    # run inside the submission's transaction, before anything is consumed.
    evidence = await read_body(request, ctx.settings.max_evidence_bytes)
    sub = await run_in_threadpool(lambda: ctx.attestation.submit_evidence(
        caller, challenge_id=challenge_id, evidence=evidence, media_type=media_type,
        now=now))
    return _json({"attestation_id": sub.attestation_id, "ear": sub.ear,
                  "result": result_to_claims(sub.result)}, 200)
