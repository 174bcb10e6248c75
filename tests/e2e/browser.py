"""Label Studio's own export page driven in headless Chromium (Debian's chromium and chromium-driver)."""

import shutil
import time
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def browser_available() -> bool:
    return Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()


def start_browser(download_dir: Path) -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(argument)
    options.add_experimental_option(
        "prefs",
        {"download.default_directory": str(download_dir), "download.prompt_for_download": False},
    )
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def log_in(driver: webdriver.Chrome, base: str, email: str, password: str) -> None:
    driver.get(f"{base}/user/login/")
    wait = WebDriverWait(driver, 60)
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "form#login-form input#email")))
    driver.find_element(By.CSS_SELECTOR, "input#email").send_keys(email)
    driver.find_element(By.CSS_SELECTOR, "input#password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "form#login-form button.login-button[type=submit]").click()
    wait.until(lambda d: "/user/login" not in d.current_url)


def export_from_page(
    driver: webdriver.Chrome, base: str, project_id: int, export_type: str, download_dir: Path
) -> Path:
    """Open the project's export page, choose `export_type`, press Export and wait for the downloaded file."""
    before = set(download_dir.iterdir())
    driver.get(f"{base}/projects/{project_id}/data/export")
    wait = WebDriverWait(driver, 90)
    wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, "button[aria-label='Export data']")))
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, ".lsf-formats__item")))
    for item in driver.find_elements(By.CSS_SELECTOR, ".lsf-formats__item"):
        name = item.find_element(By.CSS_SELECTOR, ".lsf-formats__name").text.strip()
        if name.split()[0] == export_type or name.startswith(f"{export_type} "):
            # The list scrolls inside the modal; a script click reaches items a pointer click would miss.
            driver.execute_script("arguments[0].scrollIntoView({block: 'center'}); arguments[0].click();", item)
            break
    else:
        raise AssertionError(f"No {export_type} in the formats list")
    wait.until(
        lambda d: d.find_element(By.CSS_SELECTOR, "input[name=exportType]").get_attribute("value") == export_type
    )
    driver.find_element(By.CSS_SELECTOR, "button[aria-label='Export data']").click()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        # Chromium writes into hidden temporary files and `.crdownload` ones, then renames the finished file.
        new = [
            path
            for path in set(download_dir.iterdir()) - before
            if not path.name.startswith(".") and not path.name.endswith((".crdownload", ".tmp"))
        ]
        if new and _settled(new[0]):
            return new[0]
        time.sleep(0.25)
    raise AssertionError(f"No {export_type} file was downloaded")


def _settled(path: Path) -> bool:
    """Whether a downloaded file exists, is not empty and has stopped growing."""
    try:
        size = path.stat().st_size
        time.sleep(0.3)
        return size > 0 and path.stat().st_size == size
    except FileNotFoundError:
        return False


def still_logged_in(driver: webdriver.Chrome, base: str) -> bool:
    driver.get(f"{base}/projects/")
    WebDriverWait(driver, 60).until(lambda d: d.execute_script("return document.readyState") == "complete")
    return "/user/login" not in driver.current_url


def session_cookies(driver: webdriver.Chrome) -> dict[str, str]:
    return {cookie["name"]: cookie["value"] for cookie in driver.get_cookies()}


def clean(download_dir: Path) -> None:
    shutil.rmtree(download_dir, ignore_errors=True)
    download_dir.mkdir(parents=True, exist_ok=True)
