"""The dashboard end to end in headless Chromium against a real ``cpool serve``: log in as a
tenant and as the admin, see the right jobs, submit and cancel a job from the UI, watch the
page update itself as the job starts and utilisation changes. Screenshots go to
``test-artifacts/web/``."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.web.conftest import shot

LIVE_S = 20_000  # ms to wait for something the scheduler does


def _busy(page) -> int:
    """Accelerators busy, from the overview's first key figure ("13 / 108")."""
    text = page.locator("#kpis .kpi .v").first.inner_text()
    return int(text.split("/")[0].replace(",", "").strip())


def test_a_bad_token_shows_the_login_page_with_the_reason(browser, dashboard):
    ctx = browser.new_context()
    page = ctx.new_page()
    page.goto(dashboard.url + "/jobs")
    assert "/ui/login" in page.url
    page.fill("#token", "cpool_not-a-real-token")
    page.click("button[type=submit]")
    expect(page.locator("#login-error")).to_contain_text("unknown or has been revoked")
    shot(page, "login-refused")
    ctx.close()


def test_a_tenant_sees_only_its_own_jobs(browser, dashboard):
    mine = dashboard.submit("acme", command="true", name="acme-only-job")
    theirs = dashboard.submit("bolt", command="true", name="bolt-secret-job")
    page = dashboard.login(browser, dashboard.tokens["acme"])
    expect(page.locator("header .who")).to_contain_text("acme")
    page.goto(dashboard.url + "/jobs")
    table = page.locator("#jobs")
    expect(table).to_contain_text("acme-only-job")
    expect(table).not_to_contain_text("bolt-secret-job")
    expect(page.locator("#f-tenant")).to_have_count(0)  # no tenant filter for a tenant
    shot(page, "tenant-jobs")
    page.goto(f"{dashboard.url}/jobs/{theirs['id']}")
    expect(page.locator("h1")).to_contain_text(f"No job {theirs['id']}")
    page.goto(f"{dashboard.url}/jobs/{mine['id']}")
    expect(page.locator("#summary")).to_contain_text("acme")
    page.context.close()


def test_the_admin_sees_every_tenant_and_filters(browser, dashboard):
    dashboard.submit("acme", command="true", name="acme-for-admin")
    dashboard.submit("bolt", command="true", name="bolt-for-admin")
    page = dashboard.login(browser, dashboard.admin)
    page.goto(dashboard.url + "/jobs")
    expect(page.locator("#jobs")).to_contain_text("acme-for-admin")
    expect(page.locator("#jobs")).to_contain_text("bolt-for-admin")
    shot(page, "admin-jobs")
    page.select_option("#f-tenant", "bolt")
    page.click("form.filters button[type=submit]")
    expect(page).to_have_url(re.compile(r"tenant=bolt"))
    expect(page.locator("#jobs")).to_contain_text("bolt-for-admin")
    expect(page.locator("#jobs")).not_to_contain_text("acme-for-admin")
    for path, name, heading in (
        ("/tenants", "admin-tenants", "Tenants"),
        ("/usage", "admin-usage", "Usage and cost"),
        ("/residency", "admin-residency", "Residency audit"),
    ):
        page.goto(dashboard.url + path)
        expect(page.locator("h1")).to_contain_text(heading)
        shot(page, name)
    page.goto(dashboard.url + "/tenants")
    expect(page.locator("#tenants")).to_contain_text("bolt")
    page.context.close()


def test_submit_watch_utilisation_and_cancel_from_the_ui(browser, dashboard):
    page = dashboard.login(browser, dashboard.tokens["acme"])
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    before = _busy(page)
    shot(page, "tenant-overview-before")

    page.goto(dashboard.url + "/jobs")
    page.click("#submit summary")
    page.fill("#s-name", "from-the-browser")
    page.fill("#s-command", "exec sleep 120")
    page.fill("input[name=workers]", "2")
    page.click("#s-go")
    expect(page).to_have_url(re.compile(r"/jobs/\d+$"))
    job_id = int(page.url.rsplit("/", 1)[1])
    # the page updates itself: no navigation between here and "running"
    page.evaluate("window.__stayed = true")
    expect(page.locator("#summary")).to_contain_text("running", timeout=LIVE_S)
    expect(page.locator("#placement")).to_contain_text("us-central/")
    assert page.evaluate("window.__stayed === true"), "the page reloaded"
    shot(page, "tenant-job-running")

    page.goto(dashboard.url + "/")
    page.evaluate("window.__stayed = true")
    expect(page.locator("#kpis .kpi .v").first).not_to_have_text(
        re.compile(rf"^{before} /"), timeout=LIVE_S
    )
    assert _busy(page) >= before + 2
    assert page.evaluate("window.__stayed === true")
    shot(page, "tenant-overview-running")

    page.goto(f"{dashboard.url}/jobs/{job_id}")
    page.click("#cancel")
    expect(page.locator("#summary")).to_contain_text("cancelled", timeout=LIVE_S)
    expect(page.locator("#cancel")).to_have_count(0)
    shot(page, "tenant-job-cancelled")
    r = dashboard.api(dashboard.tokens["acme"], "GET", f"/v1/jobs/{job_id}").json()
    assert r["status"] == "cancelled" and r["name"] == "from-the-browser"
    assert not errors, errors
    page.context.close()


def test_a_bad_submission_says_which_field(browser, dashboard):
    page = dashboard.login(browser, dashboard.tokens["bolt"])
    page.goto(dashboard.url + "/jobs")
    page.click("#submit summary")
    page.fill("#s-command", "true")
    page.fill("input[name=accelerator_types]", "TPUv9")
    page.click("#s-go")
    expect(page.locator("#ui-error")).to_contain_text("accelerator_types")
    shot(page, "submit-refused")
    page.context.close()


def test_the_content_security_policy_blocks_nothing_the_dashboard_uses(browser, dashboard):
    """Every page under the tight CSP (scripts from this origin only): no violation reported,
    and the live refresh (app.js polling the page) still runs."""
    page = dashboard.login(browser, dashboard.tokens["acme"])
    violations: list[str] = []
    page.on(
        "console",
        lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None,
    )
    for path in ("/", "/jobs", "/tenants", "/serving", "/usage", "/residency"):
        r = page.goto(dashboard.url + path)
        assert "script-src 'self'" in r.headers["content-security-policy"]
        assert r.headers["x-frame-options"] == "DENY"
    body = page.locator("body")  # (no wait_for_function: the CSP forbids its eval)
    expect(body).to_have_attribute("data-refreshed", re.compile(r"^\d+$"), timeout=LIVE_S)
    first = body.get_attribute("data-refreshed")
    expect(body).not_to_have_attribute("data-refreshed", first, timeout=LIVE_S)
    assert violations == []
    page.context.close()
