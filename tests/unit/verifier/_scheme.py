"""A tiny HMAC-based evidence scheme for pure unit tests of the appraisal pipeline.

Evidence is ``json(claims) || hmac_sha256(key, json)``; it exists only to drive the core's
steps in isolation (the real schemes have their own tests and conformance suites).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any, ClassVar

from devattest.errors import InvalidCbor, InvalidClaim, SignatureInvalid
from devattest.model import (
    Claims,
    DecodeLimits,
    KeyAnchor,
    KeyHints,
    SoftwareComponent,
    VerifyOptions,
)

MEDIA_TYPE = "application/vnd.devattest.unit-test+json"


@dataclass(frozen=True)
class Decoded:
    body: bytes
    tag: bytes
    claims: dict[str, Any]

    @property
    def key_hints(self) -> KeyHints:
        iid = self.claims.get("iid")
        return KeyHints(instance_id=bytes.fromhex(iid) if iid else None)

    @property
    def nonce(self) -> bytes | None:
        n = self.claims.get("nonce")
        return bytes.fromhex(n) if n else None


class UnitScheme:
    name: ClassVar[str] = "unit"
    media_types: ClassVar[tuple[str, ...]] = (MEDIA_TYPE,)
    profiles: ClassVar[tuple[str, ...]] = ("unit",)

    def decode(self, data: bytes, *, limits: DecodeLimits, options: VerifyOptions) -> Decoded:
        if len(data) < 33:
            raise InvalidCbor("too short")
        body, tag = data[:-32], data[-32:]
        try:
            claims = json.loads(body)
        except ValueError:
            raise InvalidCbor("not json") from None
        return Decoded(body, tag, claims)

    def verify_integrity(self, decoded: Decoded, key: KeyAnchor, *, options: VerifyOptions
                         ) -> tuple[str, ...]:
        want = hmac.new(key.public_key, decoded.body, hashlib.sha256).digest()
        if not hmac.compare_digest(want, decoded.tag):
            raise SignatureInvalid("bad mac", step="3")
        return ()

    def extract_claims(self, decoded: Decoded, *, now: int, options: VerifyOptions) -> Claims:
        c = decoded.claims
        if "class" not in c:
            raise InvalidClaim("class missing", step="5")
        comps = tuple(
            SoftwareComponent(measurement_value=bytes.fromhex(x["digest"]),
                              measurement_type=x["type"], version=x.get("version"),
                              signer_id=bytes.fromhex(x["signer"]) if "signer" in x else None)
            for x in c.get("components", []))
        return Claims(profile="unit", nonce=decoded.nonce,
                      instance_id=decoded.key_hints.instance_id,
                      class_id=c["class"], software_components=comps,
                      security_lifecycle=c.get("lifecycle"), raw=c)

    def instance_id_for_key(self, key: KeyAnchor) -> bytes | None:
        return None


def make_evidence(key: bytes, claims: dict[str, Any]) -> bytes:
    body = json.dumps(claims).encode()
    return body + hmac.new(key, body, hashlib.sha256).digest()
