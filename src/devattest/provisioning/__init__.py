"""Provisioning parsers: CoRIM and devattest's own JSON/YAML into the frozen model.

Pure, at the same layer as the evidence schemes: bytes or parsed documents in, frozen
:class:`~devattest.model.ReferenceValues` and :class:`~devattest.model.TrustAnchors` out.
The only I/O is in the explicit ``load_*_file(path)`` wrappers.
"""

from devattest.provisioning.corim import (
    CORIM_CONTENT_TYPE,
    PSA_PROFILES,
    Corim,
    load_corim_file,
    parse_comid,
    parse_corim,
)

__all__ = [
    "CORIM_CONTENT_TYPE",
    "PSA_PROFILES",
    "Corim",
    "load_corim_file",
    "parse_comid",
    "parse_corim",
]
