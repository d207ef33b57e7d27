"""Bad input: schemathesis against the served OpenAPI finds no 5xx (bounded examples)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.service._sim import (
    ServiceProcess,
    add_device,
    ensure_signing_key,
    make_token,
)

# Raw bodies (Evidence, CoRIM, Rego, YAML): random bytes, and COSE-looking prefixes.
for _mt in ("application/psa-attestation-token", "application/eat+cwt",
            "application/rim+cbor", "application/corim-unsigned+cbor",
            "application/corim-signed+cbor", "application/x-rego", "text/x-rego",
            "application/vnd.devattest.rego", "application/yaml", "application/x-yaml",
            "text/yaml"):
    schemathesis.openapi.media_type(_mt, st.one_of(
        st.binary(max_size=2048), st.binary(max_size=64).map(lambda b: b"\xd2\x84" + b)))


@pytest.fixture(scope="module")
def fuzz_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    data: Path = tmp_path_factory.mktemp("fuzz")
    url = f"sqlite:///{data / 'devattest.db'}"
    ensure_signing_key(data)
    add_device(url, "dev-a")
    admin = make_token(url, "admin")
    svc = ServiceProcess(data, url).start()
    try:
        yield svc.url, admin
    finally:
        svc.stop()
        log = svc.log.read_text()
        assert "Exception in ASGI application" not in log, log[-5000:]


@pytest.fixture(scope="module")
def api_schema(fuzz_target: tuple[str, str]) -> Any:
    base, _ = fuzz_target
    return schemathesis.openapi.from_url(f"{base}/openapi.json")


def test_fuzzed_requests_never_get_a_server_error(api_schema: Any,
                                                  fuzz_target: tuple[str, str]) -> None:
    """Every operation, with generated (valid and invalid) parameters and bodies, under an
    admin token so that the handlers run rather than stopping at 401/403."""
    _, admin = fuzz_target
    failures: list[str] = []
    ran = 0
    for result in api_schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=10, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def run(case: Any) -> None:
            nonlocal ran
            response = case.call(headers={"Authorization": f"Bearer {admin}"}, timeout=10)
            ran += 1
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path}: "
                                f"{response.status_code} {response.text[:200]}")

        run()
    assert ran > 100
    assert failures == []
