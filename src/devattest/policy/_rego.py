"""Rego Appraisal Policies through ``regopy`` (rego-cpp).

The policy is compiled into a bundle once, when the :class:`RegoPolicy` is constructed;
each evaluation only sets the ``input`` document and runs the bundle's query.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from typing import Any

from regopy import Bundle, Interpreter, NodeKind, RegoError

from devattest.errors import PolicyError
from devattest.policy._base import PolicyDecision, PolicyInput
from devattest.policy._document import decision_from_document, policy_input_document

DEFAULT_QUERY = "data.devattest.decision"
_BINDING = "devattest_decision"


def build_bundle(source: str, *, query: str, module_name: str = "policy.rego",
                 data: Mapping[str, Any] | None = None) -> Bundle:
    """Compile a Rego module into a bundle whose query binds ``query``'s value.

    This is the only place a bundle is built (tests count calls to it).

    Raises:
        PolicyError: the module or query does not compile.
    """
    try:
        interp = Interpreter()
        if data:
            interp.add_data(dict(data))
        interp.add_module(module_name, source)
        bundle = interp.build(f"{_BINDING} = {query}")
    except RegoError as err:
        raise PolicyError(f"Rego policy {module_name} does not compile: {err}") from None
    if not bundle.ok():
        raise PolicyError(f"Rego policy {module_name} does not compile")
    return bundle


class RegoPolicy:
    """An Appraisal Policy written in Rego.

    The query (``data.devattest.decision`` by default) must evaluate to the decision
    document ``{"allow": bool, "reasons": [str], "trust_vector": {...}}``; the ``input``
    document is :func:`policy_input_document`. Both are documented in ``docs/policy.md``.
    """

    def __init__(self, source: str, policy_id: str, query: str = DEFAULT_QUERY, *,
                 data: Mapping[str, Any] | None = None, module_name: str = "policy.rego"
                 ) -> None:
        """Compile the policy (once).

        Args:
            source: the Rego module.
            policy_id: the id reported in EAR ``ear_appraisal_policy_ids``.
            query: the rule that holds the decision document.
            data: an optional base document (``data``), e.g. allow-lists.
            module_name: the module's name in error messages.

        Raises:
            PolicyError: the policy does not compile.
        """
        self._policy_id = policy_id
        self._query = query
        self._bundle = build_bundle(source, query=query, module_name=module_name, data=data)
        # One runner interpreter, serialised by a lock: set_input + query is not atomic.
        self._runner = Interpreter()
        # Built-in errors (1/0, bad conversions) are errors, not silently "undefined".
        self._runner.strict_built_in_errors = True
        self._lock = threading.Lock()

    @property
    def policy_id(self) -> str:
        return self._policy_id

    def evaluate(self, policy_input: PolicyInput) -> PolicyDecision:
        """Run the compiled query over the input document.

        Raises:
            PolicyError: evaluation fails, the decision is undefined, or it is not a
                decision document (all the policy author's fault; the appraisal then
                fails closed).
        """
        # The input goes in as JSON text: regopy's Input() builds arrays that some built-ins
        # (json.marshal) cannot read, and which silently turn a decision "undefined".
        # Compact separators: rego-cpp parses every character of it, on every call.
        document = json.dumps(policy_input_document(policy_input), allow_nan=False,
                              separators=(",", ":"))
        with self._lock:
            try:
                self._runner.set_input_term(document)
                output = self._runner.query_bundle(self._bundle)
                kind = output.node().kind
                if kind == NodeKind.ErrorSeq or not output.ok():
                    raise PolicyError(
                        f"Rego policy {self._policy_id!r} failed to evaluate: {output}")
                if kind != NodeKind.Results:
                    # Never call binding() on an undefined result: regopy aborts.
                    raise PolicyError(
                        f"Rego policy {self._policy_id!r}: {self._query} is undefined")
                raw = output.binding(_BINDING).json()
            except RegoError as err:
                raise PolicyError(
                    f"Rego policy {self._policy_id!r} failed to evaluate: {err}") from None
        try:
            value = json.loads(raw)
        except ValueError:
            raise PolicyError(
                f"Rego policy {self._policy_id!r} returned a non-JSON value") from None
        return decision_from_document(value, policy_id=self._policy_id)
