"""Paths into nested claims maps, for tests that replace one claim at a time with hostile
values (the EAR and Evidence fuzz tests)."""

from __future__ import annotations

from typing import Any


def key_paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path into nested dicts (and list indices), the empty path (the whole value)
    first."""
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out.extend(key_paths(v, (*prefix, k)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out.extend(key_paths(v, (*prefix, i)))
    return out


def replace_at(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    """A copy of ``value`` with the item at ``path`` replaced by ``new``."""
    if not path:
        return new
    head, *rest = path
    if isinstance(value, dict):
        return {k: (replace_at(v, tuple(rest), new) if k == head else v)
                for k, v in value.items()}
    return [(replace_at(v, tuple(rest), new) if i == head else v) for i, v in enumerate(value)]
