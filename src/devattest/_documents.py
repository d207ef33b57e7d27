"""Strict JSON and YAML for every document devattest reads from outside (EAR JWTs, policy
specs, provisioning documents, JWKs, CLI claim files).

* JSON: unique member names, no NaN or Infinity. Python's ``json`` silently keeps the last of
  two equal names, which lets two parties read one document differently (RFC 7493 section
  2.3; RFC 7515 section 5.2 for JWS headers).
* YAML: the safe loader without aliases (no "billion laughs") and without duplicate keys.
* Both: nesting is bounded (:data:`MAX_DEPTH` by default) *before* any recursive code runs:
  JSON by a flat scan that counts brackets outside strings, YAML by the composer, which
  refuses the first node below the bound. Python's own parsers recurse once per level, so
  a document nested a few thousand deep would otherwise raise ``RecursionError`` (or
  exhaust a thread's stack) instead of a parse error.
* YAML integers are at most :data:`MAX_INT_CHARS` characters: YAML 1.1 base-60 integers
  (``1:59:59...``) escape Python's int-to-string limit and cost quadratic time.

Both raise ``ValueError`` (``yaml.YAMLError`` for YAML), never anything else, for any text;
callers turn it into their own typed error.
"""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

#: Deepest nesting of arrays/objects (JSON) or sequences/mappings (YAML) accepted. Every
#: devattest document is far shallower (a policy spec of nested ``all_of`` is the deepest).
MAX_DEPTH = 64
#: Longest YAML integer scalar, in characters (a 64-bit integer has at most 20 digits; the
#: margin is for underscores, signs and prefixes).
MAX_INT_CHARS = 64

# A JSON string (the unrolled form of "(?:[^"\\]|\\.)*") or one structural bracket.
_JSON_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def check_json_depth(text: str, *, max_depth: int = MAX_DEPTH) -> None:
    """Refuse JSON text nested deeper than ``max_depth``, without recursion.

    Brackets inside strings do not count. Text that is not JSON may pass (the parser then
    refuses it); JSON text deeper than ``max_depth`` never does.

    Raises:
        ValueError: the text nests arrays/objects deeper than ``max_depth``.
    """
    # Fast path: a document with no more opening brackets than the bound cannot exceed it.
    if text.count("[") + text.count("{") <= max_depth:
        return
    depth = 0
    for match in _JSON_TOKENS.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > max_depth:
                raise ValueError(f"nested deeper than {max_depth} levels (at character "
                                 f"{match.start()})")
        elif token in "]}":
            depth -= 1


def loads_strict_json(data: str | bytes, *, max_depth: int = MAX_DEPTH) -> Any:
    """Parse JSON, refusing duplicate member names, NaN/Infinity and deep nesting.

    Raises:
        ValueError: the text is not UTF-8 or not JSON, or breaks one of the rules (the
            message says which). ``json.JSONDecodeError`` and ``UnicodeDecodeError`` are
            ``ValueError`` subclasses.
    """
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    check_json_depth(text, max_depth=max_depth)
    return json.loads(text, object_pairs_hook=_unique_members, parse_constant=_no_constant)


class StrictYamlLoader(yaml.SafeLoader):
    """SafeLoader without aliases, without duplicate mapping keys, with bounded nesting and
    bounded integer scalars."""

    #: Deepest node accepted (the document's root is at depth 1).
    max_depth: int = MAX_DEPTH

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise yaml.composer.ComposerError(None, None, "YAML aliases are not allowed",
                                              event.start_mark)
        # The composer recurses once per level: refuse the level below the bound before
        # descending into it.
        self._depth += 1
        try:
            if self._depth > self.max_depth:
                event = self.peek_event()  # type: ignore[no-untyped-call]
                raise yaml.composer.ComposerError(
                    None, None, f"nested deeper than {self.max_depth} levels",
                    event.start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
            except TypeError:
                raise yaml.constructor.ConstructorError(
                    None, None, f"a mapping key must be a scalar, not a {type(key).__name__}",
                    key_node.start_mark) from None
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)

    def construct_bounded_int(self, node: Any) -> int:
        """``tag:yaml.org,2002:int``, refusing scalars longer than :data:`MAX_INT_CHARS`."""
        if len(node.value) > MAX_INT_CHARS:
            raise yaml.constructor.ConstructorError(
                None, None, f"an integer longer than {MAX_INT_CHARS} characters",
                node.start_mark)
        value: int = self.construct_yaml_int(node)
        return value


StrictYamlLoader.add_constructor("tag:yaml.org,2002:int",
                                 StrictYamlLoader.construct_bounded_int)


def loads_strict_yaml(text: str | bytes, *, max_depth: int = MAX_DEPTH) -> Any:
    """Parse YAML with :class:`StrictYamlLoader`.

    Raises:
        yaml.YAMLError: not YAML, an alias, a duplicate or non-scalar key, a non-safe tag,
            nesting deeper than ``max_depth``, an over-long integer, or a scalar the safe
            constructors refuse (an impossible date, say).
    """
    loader = StrictYamlLoader(text)
    loader.max_depth = max_depth
    try:
        return loader.get_single_data()
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        # A scalar the safe constructors cannot build (``2001-13-45`` is a timestamp with
        # month 13); RecursionError cannot happen below the depth bound, but a caller's
        # thread may have a small stack, and no input may escape as a non-YAML error.
        raise yaml.YAMLError(f"unusable YAML value: {exc}") from None
    finally:
        loader.dispose()
