"""Headless Chromium: Swagger UI at `/docs/api/` loads only the service's own files and can call
`GET /api/projects/` with an API token ("Authorize", "Try it out", "Execute"); an operator logs into the Django
admin, filters the snapshots by status, opens a failed one and retries it with the admin action.

Needs Debian's `chromium` and `chromium-driver` (/usr/bin/chromium, /usr/bin/chromedriver) and the `selenium`
package. Without them the test is skipped, unless REQUIRE_BROWSER=1 (set by CI), which makes it fail instead.
"""

import json
import os
import shutil
from urllib.parse import urlsplit

import pytest
from django.urls import reverse
from rest_framework.authtoken.models import Token

from exports import jobs
from exports.models import Export, Status
from tests.factories import fill_project, make_project, make_user

pytestmark = pytest.mark.django_db(transaction=True)

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,2000",
]
WAIT_SECONDS = 30


def browser_or_skip():
    """(chromium path, chromedriver path, selenium webdriver module), or skip/fail saying what is missing."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    chromedriver = shutil.which("chromedriver")
    try:
        from selenium import webdriver
    except ImportError:
        webdriver = None
    missing = [
        name
        for name, found in (("chromium", chromium), ("chromedriver", chromedriver), ("selenium", webdriver))
        if not found
    ]
    if missing:
        reason = (
            f"browser check needs {', '.join(missing)} (Debian: apt-get install chromium chromium-driver; "
            "pip install -e '.[test]')"
        )
        if os.environ.get("REQUIRE_BROWSER") == "1":
            pytest.fail(f"REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(reason)
    return chromium, chromedriver, webdriver


@pytest.fixture
def browser(monkeypatch):
    chromium, chromedriver, webdriver = browser_or_skip()
    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium must use these binaries, never fetch its own
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=chromedriver))
    driver.set_page_load_timeout(WAIT_SECONDS)
    yield driver
    driver.quit()


def click(wait, selector: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions

    wait.until(expected_conditions.element_to_be_clickable((By.CSS_SELECTOR, selector))).click()


def test_swagger_ui_loads_own_assets_and_calls_projects_list_with_a_token(browser, live_server, user):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    make_project(user=user, title="Seen in Swagger UI")
    key = Token.objects.get_or_create(user=user)[0].key
    wait = WebDriverWait(browser, WAIT_SECONDS)

    browser.get(f"{live_server.url}/docs/api/")
    wait.until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "[id$='-api_projects_list']")))

    # Every file the page loaded (scripts, styles, images, the schema) came from the service itself.
    loaded = browser.execute_script("return performance.getEntriesByType('resource').map(entry => entry.name)")
    origin = urlsplit(live_server.url)
    assert any(url.endswith("swagger-ui-bundle.js") for url in loaded), loaded
    assert any("/docs/api/schema/json/" in url for url in loaded), loaded
    foreign = [url for url in loaded if urlsplit(url)[:2] != origin[:2]]
    assert not foreign, foreign
    assert not browser.find_elements(By.CSS_SELECTOR, "img[src*='validator']")

    # Authorizing makes the page reload the schema and redraw, so elements are looked up afresh each step.
    browser.execute_script("ui.preauthorizeApiKey('Token', arguments[0])", f"Token {key}")
    operation = "[id$='-api_projects_list']"
    click(wait, f"{operation} .opblock-summary")
    click(wait, f"{operation} .try-out__btn")
    click(wait, f"{operation} .execute")
    status = wait.until(
        expected_conditions.visibility_of_element_located(
            (By.CSS_SELECTOR, f"{operation} .live-responses-table tr.response .response-col_status")
        )
    )

    assert status.text.strip() == "200"
    shown = f"{operation} .live-responses-table tr.response .response-col_description pre"
    body = browser.find_element(By.CSS_SELECTOR, shown).text
    page = json.loads(body)
    assert [project["title"] for project in page["results"]] == ["Seen in Swagger UI"]
    assert page["count"] == 1
    calls = browser.execute_script("return performance.getEntriesByType('resource').map(entry => entry.name)")
    assert any(urlsplit(url).path == "/api/projects/" for url in calls), calls


def test_admin_operator_filters_opens_and_retries_a_failed_snapshot(browser, live_server, org, user):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import Select, WebDriverWait

    make_user(email="root@example.com", username="root", organization=org, is_staff=True, is_superuser=True)
    project = make_project(user=user, title="Cars")
    fill_project(project, user=user, count=2)
    jobs.run_export(Export.objects.create(project=project, created_by=user, title="nightly").pk)
    failed = Export.objects.create(project=project, created_by=user, title="broken")
    assert Export.objects.transition(failed.pk, Status.FAILED, reason="RuntimeError: disk on fire")
    wait = WebDriverWait(browser, WAIT_SECONDS)

    def page_text() -> str:
        return browser.find_element(By.TAG_NAME, "body").text

    def rows() -> list:
        return browser.find_elements(By.CSS_SELECTOR, "#result_list tbody tr")

    browser.get(f"{live_server.url}/admin/")
    wait.until(expected_conditions.presence_of_element_located((By.ID, "id_username"))).send_keys("root")
    browser.find_element(By.ID, "id_password").send_keys("pw-123456")
    browser.find_element(By.CSS_SELECTOR, "#login-form [type=submit]").click()

    click(wait, f"a[href='{reverse('admin:exports_export_changelist')}']")
    wait.until(expected_conditions.presence_of_element_located((By.ID, "result_list")))
    assert len(rows()) == 2

    click(wait, "#changelist-filter a[href*='status__exact=failed']")
    wait.until(lambda driver: "status__exact=failed" in driver.current_url and len(rows()) == 1)
    assert "RuntimeError: disk on fire" in rows()[0].text
    listed = browser.current_url

    click(wait, "#result_list tbody tr th.field-id a")  # the failed snapshot's own page
    wait.until(expected_conditions.url_contains(reverse("admin:exports_export_change", args=[failed.pk])))
    assert "RuntimeError: disk on fire" in page_text()
    assert "broken" in page_text()

    browser.get(listed)
    click(wait, f"#result_list input.action-select[value='{failed.pk}']")
    Select(browser.find_element(By.NAME, "action")).select_by_value("retry_failed")
    browser.find_element(By.CSS_SELECTOR, ".actions button[name=index]").click()
    success = wait.until(expected_conditions.visibility_of_element_located((By.CSS_SELECTOR, ".messagelist .success")))

    retried = Export.objects.exclude(title="nightly").exclude(pk=failed.pk).get()
    assert success.text == f"Retried 1: #{retried.pk}."
    assert retried.status == Status.COMPLETED  # its job ran when the action's transaction committed
    assert Export.objects.get(pk=failed.pk).status == Status.FAILED

    # Every status again: the new snapshot is listed as completed beside the failed one.
    click(wait, "#changelist-filter a[href='?']")
    wait.until(lambda driver: len(rows()) == 3)
    [new_row] = [row for row in rows() if row.find_element(By.CSS_SELECTOR, "th.field-id").text == str(retried.pk)]
    assert "completed" in new_row.text.lower()
