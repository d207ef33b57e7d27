"""Helpers shared by the CLI commands: reading inputs, printing results."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.table import Table

from devattest.model import AttestationResult, Status

STATUS_STYLE = {
    Status.AFFIRMING: "bold green",
    Status.WARNING: "bold yellow",
    Status.CONTRAINDICATED: "bold red",
    Status.NONE: "bold red",
}


def read_bytes(path: Path, *, what: str, limit: int = 16 * 1024 * 1024) -> bytes:
    """Read a whole input file, refusing absurd sizes (the parsers have their own limits)."""
    size = path.stat().st_size
    if size > limit:
        raise ValueError(f"{what} {path} is {size} bytes; refusing more than {limit}")
    data = path.read_bytes()
    compact = b"".join(data.split())
    if _looks_hex(compact):  # a hex dump of a token (like the RFC 9783 *.hex files)
        return bytes.fromhex(compact.decode())
    return data


def _looks_hex(data: bytes) -> bool:
    return bool(data) and len(data) % 2 == 0 and all(c in b"0123456789abcdefABCDEF"
                                                     for c in data)


def parse_hex(value: str, *, what: str) -> bytes:
    try:
        return bytes.fromhex(value.strip().removeprefix("0x"))
    except ValueError:
        raise ValueError(f"{what} must be hexadecimal") from None


def parse_now(value: str | None) -> datetime:
    """``--now``: ISO 8601 or POSIX seconds; the wall clock when absent (the CLI is the edge
    of the system, so it may read the clock; the core never does)."""
    if value is None:
        return datetime.now(UTC)
    if value.isdigit():
        return datetime.fromtimestamp(int(value), UTC)
    dt = datetime.fromisoformat(value)
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def jsonable(value: Any) -> Any:
    """Make claims printable: bytes as hex, maps with string keys."""
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def dumps(value: Any) -> str:
    return json.dumps(jsonable(value), indent=2, sort_keys=False)


def result_table(result: AttestationResult) -> Table:
    table = Table(title="Attestation Result", show_lines=False)
    table.add_column("submod")
    table.add_column("status")
    table.add_column("trustworthiness vector")
    table.add_column("reasons")
    for name, sub in result.submods.items():
        tv = ", ".join(f"{k}={v}" for k, v in sub.trust_vector.as_ear().items())
        reasons = "\n".join(f"{c}: {m}" for c, m in sub.reasons) or "-"
        table.add_row(name, f"[{STATUS_STYLE[sub.status]}]{sub.status.value}[/]", tv, reasons)
    return table
