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
from devattest.provisioning.native import (
    REFERENCE_VALUES_FORMAT,
    TRUST_ANCHORS_FORMAT,
    dump_reference_values,
    load_reference_values_file,
    load_trust_anchors_file,
    loads_document,
    parse_reference_values,
    parse_trust_anchors,
)

__all__ = [
    "CORIM_CONTENT_TYPE",
    "PSA_PROFILES",
    "REFERENCE_VALUES_FORMAT",
    "TRUST_ANCHORS_FORMAT",
    "Corim",
    "dump_reference_values",
    "load_corim_file",
    "load_reference_values_file",
    "load_trust_anchors_file",
    "loads_document",
    "parse_comid",
    "parse_corim",
    "parse_reference_values",
    "parse_trust_anchors",
]
