"""The dashboard in headless Chromium against the real service: a wave seen live, a device
turned untrusted by a bad update and its failed measurement read on its page, login and
roles, CSRF, and accessibility basics (headings, labels, keyboard)."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from typing import Any

import pytest

from tests.integration.dashboard._fleet import TAMPERED_BL, VERSIONS, golden
from tests.integration.dashboard.conftest import FLEET_SIZE, Env, shot

pytestmark = pytest.mark.integration

PAGES = ["/dashboard/", "/dashboard/attention", "/dashboard/devices",
         "/dashboard/devices/dev-003", "/dashboard/live",
         "/dashboard/provisioning/reference-values", "/dashboard/provisioning/trust-anchors",
         "/dashboard/provisioning/policies"]


def _count(page: Any, posture: str) -> int:
    return int(page.inner_text(f'#live [data-count="{posture}"]'))


def test_live_view_follows_a_wave_and_a_bad_update_turns_a_device_untrusted(
        env: Env, new_page: Callable[..., Any]) -> None:
    page = new_page("admin")
    page.goto("/dashboard/live")
    assert _count(page, "trusted") == 0  # registered, never attested

    # 1. A fleet-wide update wave runs while the live view is open.
    wave = threading.Thread(target=env.fleet.wave, args=(VERSIONS[1],),
                            kwargs={"pause": 0.12}, daemon=True)
    first_stamp = page.get_attribute("#live", "data-at")
    wave.start()
    seen_mid_wave: list[int] = []
    stamps = {first_stamp}
    while wave.is_alive():
        page.wait_for_function(
            "s => document.querySelector('#live').dataset.at !== s",
            arg=page.get_attribute("#live", "data-at"))
        stamps.add(page.get_attribute("#live", "data-at"))
        n = _count(page, "trusted")
        if wave.is_alive() and 0 < n < FLEET_SIZE:
            seen_mid_wave.append(n)
            if len(seen_mid_wave) == 1:
                shot(page, "live-during-wave")
    wave.join()
    assert seen_mid_wave, "the live view never showed the wave in progress"
    assert len(stamps) >= 3  # it refreshed itself, repeatedly
    page.wait_for_function(
        f"() => document.querySelector('#live [data-count=\"trusted\"]').textContent"
        f".trim() === '{FLEET_SIZE}'")

    # 2. The victim is trusted before its bad update.
    victim = env.fleet.devices[5]
    page.goto(f"/dashboard/devices/{victim.device_id}")
    assert page.get_attribute("#posture", "data-posture") == "trusted"

    # 3. A bad update, watched from the live view: the device turns untrusted.
    page.goto("/dashboard/live")
    bad = threading.Thread(target=env.fleet.update, args=(victim, VERSIONS[1]),
                           kwargs={"bad": True}, daemon=True)
    bad.start()
    page.wait_for_selector(
        f'#live tr[data-device="{victim.device_id}"][data-posture="untrusted"]')
    bad.join()
    assert _count(page, "untrusted") == 1
    shot(page, "live-after-bad-update")

    # 4. It is listed as needing attention, with its reason in words.
    page.goto("/dashboard/attention?posture=untrusted")
    row = page.locator(f'tr[data-device="{victim.device_id}"]')
    assert row.count() == 1
    assert "is not a Reference Value" in row.locator(".reason").inner_text()
    shot(page, "attention")

    # 5. Its page shows the failed measurement against the expected digests.
    row.locator("a").click()
    page.wait_for_url(re.compile(rf".*/dashboard/devices/{victim.device_id}$"))
    assert page.get_attribute("#posture", "data-posture") == "untrusted"
    bl = page.locator('#components tr[data-component="BL"]')
    assert "mismatch" in (bl.get_attribute("class") or "")
    text = bl.inner_text()
    assert TAMPERED_BL.hex() in text
    assert "does not match" in text
    assert golden(victim.model, "BL", VERSIONS[1]).hex() in text
    prot = page.locator('#components tr[data-component="PRoT"]')
    assert "matches" in prot.inner_text()
    assert "unknown_measurement" in page.inner_text("#reasons")
    kinds = page.locator(".timeline li").evaluate_all("els => els.map(e => e.dataset.kind)")
    assert kinds.count("event") >= 2 and kinds.count("result") >= 2
    assert "firmware update" in page.inner_text(".timeline")
    shot(page, "device-untrusted")

    # 6. The fleet page counts it, and charts exist with their accessible names.
    page.goto("/dashboard/")
    assert page.inner_text('[data-count="untrusted"]') == "1"
    assert page.locator('svg.chart[role="img"][aria-label]').count() >= 2
    shot(page, "fleet")


def test_unauthenticated_visitor_is_redirected_to_login(
        env: Env, new_page: Callable[..., Any]) -> None:
    page = new_page()
    for path in ("/dashboard/", "/dashboard/devices/dev-001", "/dashboard/live/fragment",
                 "/dashboard/provisioning/policies"):
        page.goto(path)
        assert re.search(r"/dashboard/login\?next=", page.url), path
        assert page.locator("#token").count() == 1
    r = page.request.post(f"{env.url}/dashboard/provisioning/policies/default/delete",
                          form={"csrf_token": "x"}, max_redirects=0)
    assert r.status == 303 and "/dashboard/login" in r.headers["location"]
    r = page.request.get(f"{env.url}/dashboard/live/fragment",
                         headers={"HX-Request": "true"}, max_redirects=0)
    assert r.status == 401 and r.headers["hx-redirect"].startswith("/dashboard/login")


def test_session_cookie_is_opaque_httponly_and_samesite_strict(
        env: Env, new_page: Callable[..., Any]) -> None:
    page = new_page("relying-party")
    cookies = {c["name"]: c for c in page.context.cookies()}
    session = cookies["devattest_session"]
    assert session["httpOnly"] is True
    assert session["sameSite"] == "Strict"
    assert session["path"] == "/dashboard"
    assert env.tokens["relying-party"] not in session["value"]
    assert page.evaluate("document.cookie") == ""  # invisible to scripts


def test_rejects_login_with_a_device_token_or_an_unknown_token(
        env: Env, new_page: Callable[..., Any]) -> None:
    page = new_page()
    for token in (env.tokens["device"], "dat_not-a-real-token"):
        page.goto("/dashboard/login")
        page.fill("#token", token)
        page.click("form.login button[type=submit]")
        assert "/dashboard/login" in page.url
        assert "not valid" in page.inner_text("#login-error")
        assert "devattest_session" not in {c["name"] for c in page.context.cookies()}


def test_relying_party_sees_no_change_controls_and_cannot_change(
        env: Env, new_page: Callable[..., Any]) -> None:
    rp = new_page("relying-party")
    for kind in ("reference-values", "trust-anchors", "policies"):
        rp.goto(f"/dashboard/provisioning/{kind}")
        assert rp.locator("table.docs tbody tr[data-name]").count() >= 1  # can see
        assert rp.locator("form[method=post] button.danger").count() == 0
        assert rp.locator("form.upload").count() == 0
        assert rp.locator("textarea, input:not([type=hidden]), select").count() == 0
    assert "read only" in rp.inner_text(".who")
    rp.goto("/dashboard/devices/dev-002")
    assert rp.locator("main form").count() == 0
    # Even with its own valid CSRF token, a relying party cannot delete.
    csrf = rp.get_attribute("input[name=csrf_token]", "value")
    r = rp.request.post(f"{env.url}/dashboard/provisioning/policies/default/delete",
                        form={"csrf_token": csrf}, max_redirects=0)
    assert r.status == 403
    rp.goto("/dashboard/provisioning/policies")
    assert rp.locator('tr[data-name="default"]').count() == 1

    admin = new_page("provisioner")
    admin.goto("/dashboard/provisioning/policies")
    assert admin.locator('tr[data-name="default"] button.danger').count() == 1
    assert admin.locator("form.upload textarea").count() == 1
    shot(admin, "provisioning-provisioner")
    shot(rp, "provisioning-relying-party")


def test_rejects_post_without_the_session_csrf_token(
        env: Env, new_page: Callable[..., Any]) -> None:
    page = new_page("admin")
    for form in ({}, {"csrf_token": "forged"}):
        r = page.request.post(f"{env.url}/dashboard/provisioning/policies/default/delete",
                              form=form, max_redirects=0)
        assert r.status == 403
    page.goto("/dashboard/provisioning/policies")
    assert page.locator('tr[data-name="default"]').count() == 1


def test_provisioner_uploads_a_reference_value_document_through_the_form(
        env: Env, new_page: Callable[..., Any]) -> None:
    page = new_page("provisioner")
    page.goto("/dashboard/provisioning/reference-values")
    page.fill("#u-name", "extra-class")
    page.select_option("#u-type", "application/json")
    page.fill("#u-content", '{"format": "devattest.reference-values/v1", "classes": ['
                            '{"implementation_id": "' + "11" * 32 + '", "components": ['
                            '{"measurement_type": "BL", "measurement_values": ["'
                            + "22" * 32 + '"]}]}]}')
    page.click("form.upload button[type=submit]")
    assert "stored extra-class v1" in page.inner_text("[role=status]")
    assert page.locator('tr[data-name="extra-class"]').count() == 1
    page.locator('tr[data-name="extra-class"] button.danger').click()
    assert "deleted 1 version(s) of extra-class" in page.inner_text("[role=status]")


_HEADINGS_AND_LABELS = """() => {
  const problems = [];
  const hs = [...document.querySelectorAll('h1,h2,h3,h4,h5,h6')];
  if (document.querySelectorAll('h1').length !== 1) problems.push('h1 count');
  let prev = 0;
  for (const h of hs) {
    const level = +h.tagName[1];
    if (level > prev + 1) problems.push('skip to ' + h.tagName + ': ' + h.textContent.trim());
    prev = level;
  }
  for (const el of document.querySelectorAll('input:not([type=hidden]), select, textarea')) {
    const labelled = (el.id && document.querySelector('label[for="' + el.id + '"]'))
      || el.getAttribute('aria-label') || el.closest('label');
    if (!labelled) problems.push('unlabelled ' + el.tagName + ' ' + (el.name || ''));
  }
  for (const b of document.querySelectorAll('button')) {
    if (!(b.textContent.trim() || b.getAttribute('aria-label'))) problems.push('nameless button');
  }
  if (!document.documentElement.lang) problems.push('no lang');
  return problems;
}"""


def test_every_page_has_one_h1_no_skipped_heading_levels_and_labelled_controls(
        env: Env, new_page: Callable[..., Any]) -> None:
    page = new_page("admin")
    for path in PAGES:
        page.goto(path)
        assert page.evaluate(_HEADINGS_AND_LABELS) == [], path
    anon = new_page()
    anon.goto("/dashboard/login")
    assert anon.evaluate(_HEADINGS_AND_LABELS) == []


def _focused(page: Any) -> str:
    return str(page.evaluate(
        "() => { const e = document.activeElement;"
        " return (e.getAttribute('aria-label') || e.textContent || e.id || '').trim(); }"))


def test_keyboard_alone_logs_in_and_reaches_the_main_controls(
        env: Env, new_page: Callable[..., Any]) -> None:
    page = new_page()
    page.goto("/dashboard/login")
    page.keyboard.press("Tab")
    assert _focused(page) == "Skip to content"
    page.keyboard.press("Tab")
    assert _focused(page) == "devattest"  # the home link
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "token"
    page.keyboard.type(env.tokens["admin"])
    page.keyboard.press("Tab")
    assert _focused(page) == "Log in"
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*/dashboard/$"))

    reached = []
    for _ in range(14):
        page.keyboard.press("Tab")
        reached.append(_focused(page))
    for control in ("Skip to content", "Fleet", "Needs attention", "Devices", "Live",
                    "Reference Values", "Trust Anchors", "Policies", "Log out"):
        assert control in reached, (control, reached)

    # The skip link moves focus into the main content.
    page.goto("/dashboard/devices")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    seen = []
    for _ in range(8):
        page.keyboard.press("Tab")
        seen.append(page.evaluate("document.activeElement.id || document.activeElement"
                                  ".textContent.trim()"))
    for control in ("f-posture", "f-model", "f-owner", "f-fw", "Filter"):
        assert control in seen, (control, seen)
