"""Hostile provisioning documents through the HTTP provisioning endpoints (issue 13,
defect 4): each once answered 500; each must answer 422 with its document error's code and
a message that names the defect. The ASGI application runs in-process on SQLite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from devattest.service.app import create_app
from devattest.service.settings import Settings
from devattest.store import migrate, open_store
from tests.integration.service._sim import ensure_signing_key, make_token
from tests.unit.provisioning import _hostile as h


@pytest.fixture(scope="module")
def provisioner(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    data = tmp_path_factory.mktemp("hostile-provisioning")
    url = f"sqlite:///{data / 'devattest.db'}"
    open_store(url).dispose()
    token = make_token(url, "provisioner")
    ensure_signing_key(data)
    app = create_app(Settings(data_dir=data, database_url=url, webhook_worker=False,
                              retention_interval_seconds=0, auth_cache_seconds=0,
                              dashboard=False, max_body_bytes=4 * 1024 * 1024))
    migrate(app.state.ctx.store.engine)
    try:
        with TestClient(app, raise_server_exceptions=False,
                        headers={"Authorization": f"Bearer {token}"}) as client:
            yield client
    finally:
        app.state.ctx.store.dispose()


CORIM = "application/rim+cbor"
JSON = "application/json"
YAML = "application/yaml"
REGO = "application/x-rego"

_CASES = {
    "json-nested-1000-deep": ("reference-values", JSON, h.json_nested(1000),
                              "provisioning_schema_invalid", "nested deeper than 64"),
    "yaml-nested-50000-deep": ("reference-values", YAML, h.yaml_flow_nested(50_000),
                               "provisioning_schema_invalid", "nested deeper than 64"),
    "yaml-nested-by-indentation": ("trust-anchors", YAML, h.yaml_block_nested(5_000),
                                   "provisioning_schema_invalid", "nested deeper than 64"),
    "yaml-billion-laughs": ("reference-values", YAML, h.yaml_billion_laughs(),
                            "provisioning_schema_invalid", "aliases are not allowed"),
    "yaml-impossible-date": ("reference-values", YAML, b"classes: []\nx: 2001-13-45\n",
                             "provisioning_schema_invalid", "month must be in 1..12"),
    "yaml-list-as-key": ("trust-anchors", YAML, b"{[1]: 2}\n",
                         "provisioning_schema_invalid", "a mapping key must be a scalar"),
    "yaml-base60-integer": ("reference-values", YAML, h.yaml_base60_integer(300_000),
                            "provisioning_schema_invalid", "an integer longer than 64"),
    "bignum-security-version": ("reference-values", JSON,
                                h.reference_values({"min_security_version": 10**4000}),
                                "provisioning_schema_invalid", "64-bit"),
    "superscript-digit-version": ("reference-values", JSON,
                                  h.reference_values({"min_version": "1.\u00b2"}),
                                  "provisioning_schema_invalid", "dotted numeric"),
    "pem-key-unsupported-curve": ("trust-anchors", JSON,
                                  h.trust_anchor_key(h.unsupported_curve_pem()),
                                  "provisioning_schema_invalid",
                                  "unsupported key algorithm or curve"),
    "ca-certificate-unsupported-curve": ("trust-anchors", YAML,
                                         h.trust_anchor_ca(h.unsupported_curve_ca_pem()),
                                         "provisioning_schema_invalid",
                                         "unsupported key algorithm or curve"),
    "ca-certificate-malformed-extension": ("trust-anchors", JSON,
                                           h.trust_anchor_ca(h.malformed_extension_ca_pem()),
                                           "provisioning_schema_invalid",
                                           "not a valid certificate"),
    "jwk-curve-is-a-list": ("trust-anchors", JSON,
                            b'{"keys": [{"kid": "01", "jwk": {"kty": "EC", "crv": [1], '
                            b'"x": "AA", "y": "AA"}}]}',
                            "provisioning_schema_invalid", "keys[0].jwk.crv"),
    "corim-key-unsupported-curve": ("trust-anchors", CORIM, h.corim_unsupported_curve(),
                                    "corim_unsupported", "1.2.840.10045.3.1.2"),
    "corim-bignum-measurement-key": ("reference-values", CORIM,
                                     h.corim_bignum_measurement_key(), "corim_malformed",
                                     "bignum of 20001 bits"),
    "corim-20kb-oid-measurement-key": ("reference-values", CORIM,
                                       h.corim_huge_oid_measurement_key(), "corim_malformed",
                                       "an OID is 1 to 64 bytes"),
    "corim-20kb-oid-profile": ("reference-values", CORIM, h.corim_huge_oid_profile(),
                               "corim_malformed", "an OID is 1 to 64 bytes"),
    "corim-bignum-svn": ("reference-values", CORIM, h.corim_bignum_svn(), "corim_malformed",
                         "bignum of 20001 bits"),
    "policy-json-nested-1000-deep": ("policies", JSON, b"[" * 1000 + b"]" * 1000,
                                     "provisioning_schema_invalid", "nested deeper than 64"),
    "policy-yaml-nested-50000-deep": ("policies", YAML, h.yaml_flow_nested(50_000),
                                      "provisioning_schema_invalid", "nested deeper than 64"),
    "rego-20000-nested-brackets": ("policies", REGO,
                                   b"package devattest\nx := " + b"[" * 20_000 + b"]" * 20_000,
                                   "policy_error", "deeper than 32 levels"),
    "rego-12000-operator-expression": ("policies", REGO,
                                       b"package devattest\nx := 1" + b" + 1" * 12_000,
                                       "policy_error", "more than 256 operators"),
}


@pytest.mark.parametrize("case", list(_CASES))
def test_hostile_provisioning_document_gets_422_with_its_reason_not_500(
        provisioner: TestClient, case: str) -> None:
    kind, media_type, body, code, reason = _CASES[case]
    r = provisioner.post(f"/v1/{kind}", params={"name": case}, content=body,
                         headers={"Content-Type": media_type})
    assert r.status_code == 422, (r.status_code, r.text[:300])
    error = r.json()["error"]
    assert error["code"] == code and reason in error["message"], error
    # Nothing was stored, and the service still answers.
    assert provisioner.get(f"/v1/{kind}/{case}").status_code == 404
