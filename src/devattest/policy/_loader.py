"""Policy files for the CLI's and the service's ``--policy FILE``: a ``.rego`` module, or a
small JSON/YAML spec of built-in policies (docs/policy.md).

:func:`policy_from_spec` is pure; :func:`load_policy` is the one function in
``devattest.policy`` that reads files.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from devattest._documents import loads_strict_json, loads_strict_yaml
from devattest.errors import ConfigurationError, PolicyError
from devattest.policy._base import AppraisalPolicy
from devattest.policy._builtin import (
    AllowUnappraisedSoftware,
    DefaultPolicy,
    RequireHardwareBackedKey,
    RequireReferenceValues,
    RequireTrustVector,
    UnsafeNoOp,
)
from devattest.policy._combinators import AllOf, AnyOf
from devattest.policy._rego import DEFAULT_QUERY, RegoPolicy
from devattest.policy._tpm import AcceptSha1EventLogs

#: Largest policy file read (a policy is operator-written, but a wrong path should not
#: read a disk image).
MAX_POLICY_FILE = 1024 * 1024


def load_policy(path: str | Path) -> AppraisalPolicy:
    """Load an Appraisal Policy from a file.

    ``.rego``: a Rego module deciding ``data.devattest.decision``, id
    ``rego:<file name>@sha256:<first 16 hex digits of the file digest>``.
    ``.json`` / ``.yaml`` / ``.yml``: a built-in policy spec (see :func:`policy_from_spec`);
    ``rego`` entries in it name files relative to the spec file.

    Raises:
        PolicyError: the file cannot be read or is not a valid policy.
    """
    p = Path(path)
    text = _read(p)
    try:
        if p.suffix == ".rego":
            return rego_policy_from_source(text, name=p.name)
        if p.suffix == ".json":
            spec = loads_strict_json(text)
        elif p.suffix in (".yaml", ".yml"):
            spec = loads_strict_yaml(text)
        else:
            raise PolicyError(f"{p.name}: a policy file is .rego, .json, .yaml or .yml")
        return policy_from_spec(spec, rego_loader=lambda name: _read(p.parent / name),
                                where=p.name)
    except (ValueError, yaml.YAMLError) as err:
        raise PolicyError(f"{p.name}: not valid JSON/YAML: {err}") from None
    except ConfigurationError as err:
        raise PolicyError(f"{p.name}: {err.message}") from None


def rego_policy_from_source(source: str, *, name: str, query: str = DEFAULT_QUERY
                            ) -> RegoPolicy:
    """A RegoPolicy whose id names the module and its digest.

    Raises:
        PolicyError: the module does not compile.
    """
    digest = hashlib.sha256(source.encode("utf-8")).hexdigest()[:16]
    return RegoPolicy(source, f"rego:{name}@sha256:{digest}", query, module_name=name)


def example_policy_source(name: str = "default") -> str:
    """The source of a packaged example Rego policy (``policy/examples/<name>.rego``).

    Raises:
        PolicyError: there is no such example.
    """
    try:
        return (resources.files("devattest.policy") / "examples" / f"{name}.rego").read_text(
            encoding="utf-8")
    except (FileNotFoundError, OSError):
        raise PolicyError(f"no example policy {name!r}") from None


def policy_from_spec(spec: Any, *, rego_loader: Callable[[str], str] | None = None,
                     where: str = "policy") -> AppraisalPolicy:
    """Build a policy from a spec document. Each node is a one-key map::

        {"all_of": [node, ...]}            {"any_of": [node, ...]}
        {"default": true}                  {"require_hardware_backed_key": true}
        {"require_reference_values": true} {"min_trust": {"executables": "affirming"}}
        {"accept_sha1_event_logs": true}
        {"rego": {"file": "x.rego", "query": "data.devattest.decision"}}
        {"allow_unappraised_software": true}  (explicit signature-only appraisal)
        {"unsafe_no_op": true}             (tests only; logs a warning on every use)

    Args:
        spec: the parsed JSON/YAML document.
        rego_loader: reads a ``rego`` node's file; without one, ``rego`` nodes are refused.
        where: names the spec in error messages.

    Raises:
        PolicyError: the spec is malformed.
        ConfigurationError: a combinator is empty or a built-in is misconfigured.
    """
    if not isinstance(spec, Mapping) or len(spec) != 1:
        raise PolicyError(f"{where}: a policy node is a map with exactly one key")
    ((kind, arg),) = spec.items()
    if kind in ("all_of", "any_of"):
        if not isinstance(arg, list):
            raise PolicyError(f"{where}: {kind} takes a list of policies")
        members = [policy_from_spec(m, rego_loader=rego_loader, where=f"{where}.{kind}[{i}]")
                   for i, m in enumerate(arg)]
        return AllOf(members) if kind == "all_of" else AnyOf(members)
    flags: dict[str, Callable[[], AppraisalPolicy]] = {
        "default": DefaultPolicy,
        "require_hardware_backed_key": RequireHardwareBackedKey,
        "require_reference_values": RequireReferenceValues,
        "allow_unappraised_software": AllowUnappraisedSoftware,
        "unsafe_no_op": UnsafeNoOp,
        "accept_sha1_event_logs": AcceptSha1EventLogs,
    }
    if kind in flags:
        if arg is not True:
            raise PolicyError(f"{where}: {kind} takes the value true")
        return flags[kind]()
    if kind == "min_trust":
        if not isinstance(arg, Mapping) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in arg.items()):
            raise PolicyError(f"{where}: min_trust maps claim names to tier names")
        return RequireTrustVector(arg)
    if kind == "rego":
        if rego_loader is None:
            raise PolicyError(f"{where}: rego files are not allowed here")
        if not isinstance(arg, Mapping) or not isinstance(arg.get("file"), str) or (
                set(arg) - {"file", "query"}):
            raise PolicyError(f"{where}: rego takes {{file, query?}}")
        query = arg.get("query", DEFAULT_QUERY)
        if not isinstance(query, str):
            raise PolicyError(f"{where}: rego.query is text")
        return rego_policy_from_source(rego_loader(arg["file"]), name=arg["file"],
                                       query=query)
    raise PolicyError(f"{where}: unknown policy {kind!r}")


def _read(path: Path) -> str:
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_POLICY_FILE + 1)
    except OSError as err:
        raise PolicyError(f"cannot read policy file {path}: {err.strerror}") from None
    if len(data) > MAX_POLICY_FILE:
        raise PolicyError(f"policy file {path} is larger than {MAX_POLICY_FILE} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise PolicyError(f"policy file {path} is not UTF-8") from None
