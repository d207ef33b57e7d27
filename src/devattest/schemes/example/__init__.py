"""A copy-me evidence scheme: start here to add a new evidence format.

The format is deliberately tiny: a tagged COSE_Sign1 whose payload is the CBOR map

    { "nonce": bstr (16..64 bytes), "device": tstr, "firmware": bstr (32 bytes) }

To write your own scheme:

1. Copy this package to ``src/devattest/schemes/<yours>/`` and rename the class.
2. Pick a unique ``name`` and the exact media types you handle (the registry refuses a media
   type another scheme already has).
3. Keep the three steps pure: no clock (``now`` is an argument), no I/O, no store.
4. Raise one specific error class per failure, with a message a test can match.
5. Register the scheme: ``SchemeRegistry([...built-ins..., YourScheme()])``. This example is
   registered only in tests, never in ``default_registry``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import cbor2

from devattest.cose import CoseMessage, decode_cose, strict_loads, verify_sign1
from devattest.errors import AlgorithmError, InvalidClaim, MalformedClaims, MissingClaim
from devattest.model import (
    Claims,
    DecodeLimits,
    KeyAnchor,
    KeyHints,
    SoftwareComponent,
    VerifyOptions,
)

MEDIA_TYPE = "application/vnd.devattest.example+cbor"
PROFILE = "urn:devattest:example:1"


@dataclass(frozen=True, slots=True)
class ExampleEvidence:
    """What ``decode`` hands to the later steps. The core reads only ``key_hints`` and
    ``nonce``; everything else is private to the scheme."""

    message: CoseMessage
    claims: dict[Any, Any]
    key_hints: KeyHints
    nonce: bytes | None


class ExampleScheme:
    """The example scheme. See the module docstring."""

    # The registry keys schemes by these two class attributes.
    name: ClassVar[str] = "example"
    media_types: ClassVar[tuple[str, ...]] = (MEDIA_TYPE,)
    #: The profiles ``extract_claims`` reports; the core refuses any other (no scheme
    #: confusion).
    profiles: ClassVar[tuple[str, ...]] = (PROFILE,)

    def decode(self, data: bytes, *, limits: DecodeLimits, options: VerifyOptions
               ) -> ExampleEvidence:
        """Step 1: parse under the strict limits. Nothing is trusted yet.

        Raises:
            EvidenceError: malformed COSE or CBOR, or a payload that is not a map.
        """
        # decode_cose enforces size, depth, duplicate keys, trailing bytes and the tag.
        msg = decode_cose(data, limits=limits, options=options, expected="sign1")
        claims = strict_loads(msg.payload, limits=limits)
        if not isinstance(claims, dict):
            raise MalformedClaims("the example payload must be a map", step="1")
        nonce = claims.get("nonce")
        # Key hints tell the core where to find the key (step 2): here only the COSE kid.
        return ExampleEvidence(message=msg, claims=claims, key_hints=KeyHints(kid=msg.kid),
                               nonce=nonce if type(nonce) is bytes else None)

    def verify_integrity(self, decoded: ExampleEvidence, key: KeyAnchor, *,
                         options: VerifyOptions) -> tuple[str, ...]:
        """Step 3: the signature, with the key the core found in step 2.

        Raises:
            AlgorithmError: the key is symmetric (this format is signed, never MACed).
            SignatureInvalid: the signature does not verify.
        """
        if isinstance(key.public_key, (bytes, bytearray)):
            raise AlgorithmError("the example format needs a public key", step="3")
        # verify_sign1 checks alg (protected only), crit and the signature; it returns
        # annotations to report (e.g. a legacy relaxation that was used).
        return verify_sign1(decoded.message, key.public_key, options=options)

    def extract_claims(self, decoded: ExampleEvidence, *, now: int, options: VerifyOptions
                       ) -> Claims:
        """Step 5: the format's claim rules, then normalised claims for steps 6 and 7.

        Raises:
            MissingClaim: a mandatory claim is absent.
            InvalidClaim: a claim has the wrong type or size.
        """
        c = decoded.claims
        for name in ("nonce", "device", "firmware"):
            if name not in c:
                raise MissingClaim(f"missing mandatory claim {name!r}", step="5")
        if type(c["nonce"]) is not bytes or not 16 <= len(c["nonce"]) <= 64:
            raise InvalidClaim("'nonce' must be 16 to 64 bytes", step="5")
        if type(c["device"]) is not str or not c["device"]:
            raise InvalidClaim("'device' must be a non-empty text string", step="5")
        if type(c["firmware"]) is not bytes or len(c["firmware"]) != 32:
            raise InvalidClaim("'firmware' must be a 32-byte digest", step="5")
        # class_id picks the Reference Values; software_components are what step 6 compares.
        return Claims(
            profile=PROFILE,
            nonce=c["nonce"],
            class_id=c["device"],
            software_components=(SoftwareComponent(measurement_value=c["firmware"],
                                                   measurement_type="firmware"),),
            raw=dict(c),
        )

    def instance_id_for_key(self, key: KeyAnchor) -> bytes | None:
        """No key-bound identity in this format."""
        return None


def create_example_evidence(nonce: bytes, device: str, firmware: bytes, signer: Any, *,
                            kid: bytes | None = None) -> bytes:
    """Build example evidence (for tests and as a template for an attester).

    Raises:
        AlgorithmError: the signer's key is not usable for COSE.
    """
    from devattest.cose import PrivateKeySigner, create_sign1

    payload = cbor2.dumps({"nonce": nonce, "device": device, "firmware": firmware},
                          canonical=True)
    if not (hasattr(signer, "sign") and hasattr(signer, "alg")):
        signer = PrivateKeySigner(signer)
    return create_sign1(payload, signer, kid=kid)


__all__ = ["MEDIA_TYPE", "PROFILE", "ExampleEvidence", "ExampleScheme",
           "create_example_evidence"]
