"""Issue 13, defect 5: a NUL byte in a list filter (``/v1/devices?model=a%00b``) reached
PostgreSQL, which cannot store U+0000 in text, and came back as a 503 with a logged
traceback. Control characters (and lone surrogates) in the path, the query string and JSON
string fields are now refused with 422 before any route, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import pytest

from tests.integration.service.conftest import Live

LIST_FILTERS = [
    ("/v1/devices", {"model": "a\x00b"}),
    ("/v1/devices", {"owner": "acme\x00"}),
    ("/v1/devices", {"after": "\x00"}),
    ("/v1/attestations", {"device_id": "dev-a\x00"}),
    ("/v1/attestations", {"outcome": "appraised\x00"}),
    ("/v1/devices", {"model": "m1\x1b[2J"}),  # a terminal escape for whoever reads the log
    ("/v1/devices", {"owner": "acme\x85"}),  # C1 control (NEL)
]


@pytest.mark.parametrize(("path", "params"), LIST_FILTERS,
                         ids=[f"{p}?{next(iter(q))}" for p, q in LIST_FILTERS])
def test_nul_byte_in_list_filter_is_refused_with_422_not_a_database_error(
        live: Live, path: str, params: dict[str, str]) -> None:
    r = live.client("admin").get(path, params=params)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "invalid_request"
    assert r.json()["details"][0]["loc"] == ["query"]


def test_percent_encoded_surrogate_in_query_is_refused(live: Live) -> None:
    r = live.client("admin").get("/v1/devices?model=%ED%A0%80")
    assert r.status_code == 422, r.text


def test_nul_byte_in_path_parameter_is_refused(live: Live) -> None:
    for path in ("/v1/devices/dev-a%00", "/v1/reference-values/fw%00/versions",
                 "/v1/devices/dev%01a/passport"):
        r = live.client("admin").get(path)
        assert r.status_code == 422, (path, r.text)
        assert r.json()["details"][0]["loc"] == ["path"]


@pytest.mark.parametrize("body", [
    {"id": "dev-nul-1", "model": "m\x00"},
    {"id": "dev-nul-2", "owner": "o\x07"},
    {"id": "dev-nul-3", "instance_id": "01\x00"},
])
def test_nul_byte_in_device_json_field_is_refused_with_422(live: Live,
                                                           body: dict[str, str]) -> None:
    r = live.client("provisioner").post("/v1/devices", json=body)
    assert r.status_code == 422, r.text
    assert "control character" in r.text
    r = live.client("provisioner").patch("/v1/devices/dev-a",
                                         json={k: v for k, v in body.items() if k != "id"})
    assert r.status_code == 422, r.text


def test_nul_byte_in_token_label_and_webhook_url_is_refused_with_422(live: Live) -> None:
    r = live.client("admin").post("/v1/tokens", json={"role": "relying-party",
                                                      "label": "ops\x00"})
    assert r.status_code == 422, r.text
    r = live.client("relying-party").post(
        "/v1/webhooks", json={"url": "https://rp.example/\x00hook"})
    assert r.status_code == 422, r.text


def test_lone_surrogate_in_json_field_is_refused_with_422(live: Live) -> None:
    r = live.client("provisioner").post(
        "/v1/devices", content=b'{"id": "dev-sur", "model": "\\ud800"}',
        headers={"Content-Type": "application/json"})
    assert r.status_code == 422, r.text


def test_ordinary_filters_and_fields_still_work(live: Live) -> None:
    r = live.client("admin").get("/v1/devices", params={"model": "m1", "owner": "acme"})
    assert r.status_code == 200, r.text
    assert {d["id"] for d in r.json()["items"]} >= {"dev-a", "dev-b"}
    r = live.client("admin").get("/v1/devices", params={"model": "caf\u00e9 \u2603"})
    assert r.status_code == 200, r.text
    r = live.client("admin").get("/v1/attestations", params={"device_id": "dev-a",
                                                             "outcome": "appraised"})
    assert r.status_code == 200, r.text
