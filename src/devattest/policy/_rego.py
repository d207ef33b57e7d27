"""Rego Appraisal Policies through ``regopy`` (rego-cpp).

The policy is compiled into a bundle once, when the :class:`RegoPolicy` is constructed;
each evaluation only sets the ``input`` document and runs the bundle's query.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Mapping
from typing import Any

from regopy import Bundle, Interpreter, NodeKind, RegoError

from devattest.errors import PolicyError
from devattest.policy._base import PolicyDecision, PolicyInput
from devattest.policy._document import decision_from_document, policy_input_document

DEFAULT_QUERY = "data.devattest.decision"
_BINDING = "devattest_decision"

#: Bounds on a Rego module, checked before rego-cpp sees it. rego-cpp recurses once per
#: nesting level and per operator of an expression: a module of 20,000 nested brackets, or
#: of one expression with 50,000 operators, crashes the process (SIGSEGV), and long chains
#: take super-linear time to compile. Real policies are a few kilobytes, nest a few levels
#: and have a handful of operators per expression.
MAX_REGO_SOURCE_BYTES = 64 * 1024
MAX_REGO_NESTING = 32
MAX_REGO_EXPRESSION_OPERATORS = 256

# Rego lexemes (https://www.openpolicyagent.org/docs/policy-reference/#grammar): comments,
# strings, raw strings, operands (names, numbers), brackets, operators, separators.
_REGO_TOKENS = re.compile(r"""
    (?P<skip>\#[^\n]*|\s+)
  | (?P<operand>"(?:[^"\\\n]|\\.)*"|`[^`]*`|[A-Za-z_][A-Za-z0-9_]*|[0-9][0-9A-Za-z_.]*)
  | (?P<open>[(\[{])
  | (?P<close>[)\]}])
  | (?P<sep>[,;])
  | (?P<op>:=|==|!=|<=|>=|[-+*/%&|<>=.:!])
  | (?P<other>.)
""", re.VERBOSE | re.DOTALL)


def check_rego_source(source: str, *, what: str) -> None:
    """Refuse a Rego module (or query) that rego-cpp cannot compile safely.

    A flat scan, without recursion: nesting of ``( [ {`` outside strings and comments, and
    the operators of one expression (a run of operands joined by operators; two adjacent
    operands, a ``,`` or a ``;`` start a new one).

    Raises:
        PolicyError: larger than :data:`MAX_REGO_SOURCE_BYTES`, nested deeper than
            :data:`MAX_REGO_NESTING`, or an expression with more than
            :data:`MAX_REGO_EXPRESSION_OPERATORS` operators.
    """
    size = len(source.encode("utf-8", errors="replace"))
    if size > MAX_REGO_SOURCE_BYTES:
        raise PolicyError(f"Rego policy {what} is {size} bytes; the limit is "
                          f"{MAX_REGO_SOURCE_BYTES}")
    depth = 0
    operators = 0
    previous = "sep"
    for match in _REGO_TOKENS.finditer(source):
        kind = match.lastgroup or "other"
        if kind == "skip":
            continue
        if kind == "open":
            depth += 1
            if depth > MAX_REGO_NESTING:
                raise PolicyError(f"Rego policy {what} nests brackets deeper than "
                                  f"{MAX_REGO_NESTING} levels (at character {match.start()})")
        elif kind == "close":
            depth = max(depth - 1, 0)
        elif kind == "sep" or (kind == "operand" and previous in ("operand", "close")):
            operators = 0
        elif kind == "op":
            operators += 1
            if operators > MAX_REGO_EXPRESSION_OPERATORS:
                raise PolicyError(f"Rego policy {what} has an expression of more than "
                                  f"{MAX_REGO_EXPRESSION_OPERATORS} operators (at character "
                                  f"{match.start()})")
        previous = kind


def build_bundle(source: str, *, query: str, module_name: str = "policy.rego",
                 data: Mapping[str, Any] | None = None) -> Bundle:
    """Compile a Rego module into a bundle whose query binds ``query``'s value.

    This is the only place a bundle is built (tests count calls to it).

    Raises:
        PolicyError: the module or query does not compile, or is over a bound of
            :func:`check_rego_source`.
    """
    check_rego_source(source, what=module_name)
    check_rego_source(query, what=f"{module_name} query")
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
