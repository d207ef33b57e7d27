"""Scheme ``tpm``: TPM 2.0 quote Evidence with a measured-boot event log.

Media type ``application/vnd.devattest.tpm-quote+cbor``; see :mod:`.scheme` and
``docs/tpm.md``. Pure: the verifier path never imports tpm2-pytss.
"""

from devattest.schemes.tpm.clock import ClockCheck, ClockState, check_clock_monotonic
from devattest.schemes.tpm.scheme import (
    AK_REQUIRED_ATTRIBUTES,
    DEFAULT_PCR_SELECTION,
    MEDIA_TYPE,
    PROFILE,
    TpmQuoteEvidence,
    TpmQuoteScheme,
)
from devattest.schemes.tpm.structures import PcrSelection

__all__ = [
    "AK_REQUIRED_ATTRIBUTES",
    "DEFAULT_PCR_SELECTION",
    "MEDIA_TYPE",
    "PROFILE",
    "ClockCheck",
    "ClockState",
    "PcrSelection",
    "TpmQuoteEvidence",
    "TpmQuoteScheme",
    "check_clock_monotonic",
]
