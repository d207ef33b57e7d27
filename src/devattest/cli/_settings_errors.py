"""One line for an invalid setting: which setting, what it was given, what it accepts.

pydantic's own report of a ``BaseSettings`` failure is many lines long and names the field,
not the ``DEVATTEST_*`` variable an operator sets; :func:`describe_validation_error` turns it
into the single line ``devattest`` prints before exiting 3.
"""

from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Any

import annotated_types
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from devattest.errors import shown


def _model_named(title: str) -> type[BaseModel] | None:
    """The settings class pydantic named in the error (the title is the class name)."""
    from pydantic_settings import BaseSettings

    todo: list[type[Any]] = [BaseSettings]
    while todo:
        cls = todo.pop()
        if cls.__name__ == title and cls is not BaseSettings:
            return typing.cast(type[BaseModel], cls)
        todo.extend(cls.__subclasses__())
    return None


def _bounds(field: FieldInfo) -> str:
    low = high = ""
    for m in field.metadata:
        if isinstance(m, annotated_types.Ge):
            low = f"at least {m.ge}"
        elif isinstance(m, annotated_types.Gt):
            low = f"more than {m.gt}"
        elif isinstance(m, annotated_types.Le):
            high = f"at most {m.le}"
        elif isinstance(m, annotated_types.Lt):
            high = f"less than {m.lt}"
    return " and ".join(b for b in (low, high) if b)


def _kind(annotation: Any) -> str:
    args = typing.get_args(annotation)
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        parts = [_kind(a) for a in args if a is not type(None)]
        text = " or ".join(parts)
        return f"{text} (or unset)" if type(None) in args else text
    if origin is list:
        return f"a JSON list of {_kind(args[0]) if args else 'values'}"
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    return {bool: "true or false", int: "an integer", float: "a number", str: "text",
            Path: "a file path"}.get(annotation, getattr(annotation, "__name__", "a value"))


def accepted_values(field: FieldInfo) -> str:
    """What a settings field accepts, in words: ``an integer, at least 1 and at most 3600``."""
    kind = _kind(field.annotation)
    bounds = _bounds(field)
    return f"{kind}, {bounds}" if bounds else kind


def describe_validation_error(exc: ValidationError) -> str:
    """The first invalid setting of ``exc`` as one line (and how many more there are).

    Example: ``invalid setting DEVATTEST_CHALLENGE_TTL_SECONDS='abc': expected an integer,
    at least 1 and at most 3600``.
    """
    errors = exc.errors(include_url=False)
    if not errors:  # pragma: no cover - pydantic always lists one
        return f"invalid settings ({exc.title})"
    first = errors[0]
    loc = [str(p) for p in first.get("loc", ())]
    model = _model_named(exc.title)
    prefix = str(model.model_config.get("env_prefix", "")) if model is not None else ""
    name = (prefix + "_".join(loc)).upper() if prefix else ".".join(loc) or exc.title
    field = model.model_fields.get(loc[0]) if model is not None and loc else None
    if first.get("type") == "extra_forbidden":
        line = f"unknown setting {name}"
    else:
        given = f"={shown(first['input'])}" if "input" in first else ""
        accepted = accepted_values(field) if field is not None else str(first.get("msg", ""))
        line = f"invalid setting {name}{given}: expected {accepted}"
    more = len(errors) - 1
    return line + (f" (and {more} more invalid setting{'s' if more > 1 else ''})"
                   if more else "")
