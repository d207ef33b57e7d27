"""Text that enters devattest from outside (HTTP query and path parameters, JSON string
fields, MQTT message fields): one check, used by every interface.

Control characters (Unicode category Cc: U+0000-U+001F, U+007F-U+009F) and lone surrogates
(U+D800-U+DFFF) are never part of an identifier, a label or a filter. PostgreSQL cannot
store U+0000 in text at all and psycopg cannot encode a lone surrogate, so such a value
reaching the store failed as a database error (issue 13, defect 5); logs and dashboards
would otherwise show whatever the control characters do to a terminal.
"""

from __future__ import annotations

import re

#: One character no input text may hold.
_FORBIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def has_control_characters(text: str) -> bool:
    """Whether ``text`` holds a control character or a lone surrogate."""
    return _FORBIDDEN.search(text) is not None


def check_text(text: str) -> str:
    """``text`` unchanged, when it holds no control character nor lone surrogate (a
    pydantic ``AfterValidator``).

    Raises:
        ValueError: it does (the message names the first offending code point).
    """
    found = _FORBIDDEN.search(text)
    if found is not None:
        raise ValueError(f"control character U+{ord(found.group()):04X} is not allowed "
                         f"(at position {found.start()})")
    return text


__all__ = ["check_text", "has_control_characters"]
