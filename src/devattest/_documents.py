"""Strict JSON and YAML for every document devattest reads from outside (EAR JWTs, policy
specs, provisioning documents, JWKs, CLI claim files).

* JSON: unique member names, no NaN or Infinity. Python's ``json`` silently keeps the last of
  two equal names, which lets two parties read one document differently (RFC 7493 section
  2.3; RFC 7515 section 5.2 for JWS headers).
* YAML: the safe loader without aliases (no "billion laughs") and without duplicate keys.

Both raise ``ValueError`` (``yaml.YAMLError`` for YAML); callers turn it into their own
typed error.
"""

from __future__ import annotations

import json
from typing import Any

import yaml


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def loads_strict_json(data: str | bytes) -> Any:
    """Parse JSON, refusing duplicate member names and NaN/Infinity.

    Raises:
        ValueError: the text is not UTF-8 or not JSON, or breaks one of the rules (the
            message says which). ``json.JSONDecodeError`` and ``UnicodeDecodeError`` are
            ``ValueError`` subclasses.
    """
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    return json.loads(text, object_pairs_hook=_unique_members, parse_constant=_no_constant)


class StrictYamlLoader(yaml.SafeLoader):
    """SafeLoader without aliases and without duplicate mapping keys."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise yaml.composer.ComposerError(None, None, "YAML aliases are not allowed",
                                              event.start_mark)
        return super().compose_node(parent, index)

    def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def loads_strict_yaml(text: str | bytes) -> Any:
    """Parse YAML with :class:`StrictYamlLoader`.

    Raises:
        yaml.YAMLError: not YAML, an alias, a duplicate key, or a non-safe tag.
    """
    return yaml.load(text, Loader=StrictYamlLoader)  # noqa: S506 - a SafeLoader subclass
