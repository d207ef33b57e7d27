"""Appraisal Policies (RFC 9334 section 8.5): one-method objects composed with
:class:`AllOf` / :class:`AnyOf`, built-ins, and Rego policies through ``regopy``.

See ``docs/policy.md`` for the input document, the decision document and the spec format.
"""

from devattest.policy._base import AppraisalPolicy, PolicyDecision, PolicyInput
from devattest.policy._builtin import (
    AllowUnappraisedSoftware,
    DefaultPolicy,
    RequireHardwareBackedKey,
    RequireReferenceValues,
    RequireTrustVector,
    UnsafeNoOp,
)
from devattest.policy._combinators import (
    EMPTY_SET_REASON,
    AllOf,
    AnyOf,
    least_trusting,
    policy_ids,
)
from devattest.policy._document import (
    TRUST_CLAIMS,
    decision_from_document,
    json_document,
    policy_input_document,
)
from devattest.policy._loader import (
    example_policy_source,
    load_policy,
    policy_from_spec,
    rego_policy_from_source,
)
from devattest.policy._rego import DEFAULT_QUERY, RegoPolicy, build_bundle
from devattest.policy._tpm import AcceptSha1EventLogs

__all__ = [
    "DEFAULT_QUERY",
    "EMPTY_SET_REASON",
    "TRUST_CLAIMS",
    "AcceptSha1EventLogs",
    "AllOf",
    "AllowUnappraisedSoftware",
    "AnyOf",
    "AppraisalPolicy",
    "DefaultPolicy",
    "PolicyDecision",
    "PolicyInput",
    "RegoPolicy",
    "RequireHardwareBackedKey",
    "RequireReferenceValues",
    "RequireTrustVector",
    "UnsafeNoOp",
    "build_bundle",
    "decision_from_document",
    "example_policy_source",
    "json_document",
    "least_trusting",
    "load_policy",
    "policy_from_spec",
    "policy_ids",
    "policy_input_document",
    "rego_policy_from_source",
]
