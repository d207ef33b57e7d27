"""Challenge-response: ``POST /v1/challenges`` and ``POST /v1/challenges/{id}/evidence``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response
from fastapi.concurrency import run_in_threadpool

from devattest.schemes.tpm import MEDIA_TYPE as TPM_MEDIA_TYPE
from devattest.service.deps import Caller, Ctx, Now
from devattest.service.fastlane import challenge_body, evidence_body
from devattest.service.problems import UnsupportedMedia
from devattest.service.routes._common import errors, read_body
from devattest.service.schemas import ChallengeCreate, ChallengePublic, EvidenceResult
from devattest.service.services.material import base_media_type

router = APIRouter(prefix="/v1/challenges", tags=["challenge-response"])
ChallengeId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$")]


# The well-formed requests of these two routes are served by service.fastlane.HotRoutes
# (the same service calls and bodies); these handlers answer the rest, and describe both
# routes in the OpenAPI document. Responses are built once with orjson (the
# ``response_model`` documents the shape; FastAPI passes a Response through as it is).


@router.post("", status_code=201, response_model=ChallengePublic,
             responses=errors(403, 404, 409, 422))
async def create_challenge(body: ChallengeCreate, ctx: Ctx, caller: Caller, now: Now
                           ) -> Response:
    """Issue a nonce bound to ``device_id`` (roles: relying-party, device for itself)."""
    ch = await run_in_threadpool(lambda: ctx.attestation.issue_challenge(
        caller, device_id=body.device_id, nonce_size=body.nonce_size, now=now))
    return Response(challenge_body(ch.id, ch.device_id, ch.nonce, ch.expires_at),
                    status_code=201, media_type="application/json")


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
    limit = ctx.settings.max_evidence_bytes
    if base_media_type(media_type) == TPM_MEDIA_TYPE:
        limit = ctx.settings.tpm_max_evidence_bytes  # TPM Evidence carries an event log
    evidence = await read_body(request, limit)
    sub = await run_in_threadpool(lambda: ctx.attestation.submit_evidence(
        caller, challenge_id=challenge_id, evidence=evidence, media_type=media_type,
        now=now))
    return Response(evidence_body(sub.attestation_id, sub.ear), media_type="application/json")
