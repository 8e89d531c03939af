"""Open the admin pages in a real headless Chromium and check that the charts drew data.

Needs Debian's chromium and chromium-driver (`.ci/run` installs them when missing).
Screenshots go to var/test-artifacts/. CI runs the suite twice; this test runs in the
first run only (the second sets DATALAKE_BROWSER_TEST=off).
"""

import datetime as dt
import os
import shutil
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import timezone

from datalake.models import JobRun
from datalake.monitoring import check_lake
from datalake.storage import get_storage
from tests.datalake.ops.test_monitoring import silver_executions

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

ARTIFACTS = Path(settings.BASE_DIR) / "var" / "test-artifacts"
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run",
                  "--window-size=1366,900")  # fmt: skip


@pytest.fixture
def browser():
    if os.environ.get("DATALAKE_BROWSER_TEST") == "off":
        pytest.skip("browser test runs once per CI, in the first run (DATALAKE_BROWSER_TEST=off)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium not installed")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if not chromium or not driver_path:
        pytest.skip("chromium and chromedriver not found: apt-get install chromium chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    from selenium.webdriver.chrome.service import Service

    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


@pytest.fixture
def lake_with_history(tmp_path, settings):
    settings.DATALAKE_URI = str(tmp_path / "lake")
    storage = get_storage()
    now = timezone.now()
    for days in (2, 1, 0):
        silver_executions(storage, [now - dt.timedelta(days=days, hours=3)] * (3 + days))
    for seconds in (4, 9, 6):
        start = now - dt.timedelta(minutes=seconds)
        JobRun.objects.create(job_name="silver.stop_executions", layer="silver",
                              status="SUCCEEDED", started_at=start,
                              finished_at=start + dt.timedelta(seconds=seconds))  # fmt: skip
    check_lake(now=now - dt.timedelta(hours=2))
    check_lake(now=now)
    get_user_model().objects.create_superuser("admin", "a@example.com", "pw-for-the-browser")


def chart_points(driver, chart: str) -> int:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    selector = f'canvas[data-chart="{chart}"][data-points]'
    canvas = WebDriverWait(driver, 20).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, selector))
    )
    return int(canvas.get_attribute("data-points"))


def screenshot(driver, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    driver.save_screenshot(str(path))
    return path


def test_admin_pages_render_charts_with_data(browser, live_server, lake_with_history) -> None:
    from selenium.webdriver.common.by import By

    browser.get(f"{live_server.url}/admin/login/?next=/admin/datalake/datasetstatus/")
    browser.find_element(By.NAME, "username").send_keys("admin")
    browser.find_element(By.NAME, "password").send_keys("pw-for-the-browser")
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()

    assert chart_points(browser, "rows-per-day") == 3  # three dates of silver rows
    assert chart_points(browser, "freshness") == 2  # two checks of one contracted dataset
    assert chart_points(browser, "durations") >= 3
    assert "silver.stop_executions" in browser.find_element(By.ID, "lake-datasets").text
    shot = screenshot(browser, "admin-datasets.png")
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 20_000  # a drawn page, not a blank one
    log = browser.get_log("browser")
    errors = [e for e in log if e["level"] == "SEVERE" and "favicon.ico" not in e["message"]]
    assert errors == []

    browser.get(f"{live_server.url}/admin/datalake/jobrun/")
    table = browser.find_element(By.ID, "result_list")
    assert "silver.stop_executions" in table.text
    assert table.size["width"] <= browser.find_element(By.ID, "changelist").size["width"]
    assert screenshot(browser, "admin-job-history.png").stat().st_size > 10_000
