"""What the console's bench and screenshot scripts share: a fresh `strata
serve` with its console on free loopback ports, a boto3 client for it, and
a headless Chromium (Debian's, through /usr/bin/chromedriver) signed in.
Run the scripts with the browser tests' venv (.venv-browser)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import boto3
from botocore.config import Config
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

ROOT = Path(__file__).resolve().parent.parent
ACCESS_KEY, SECRET_KEY = "console-kit", "console-kit-secret-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, binary: str | None = None, extra_args=()):
        self.binary = binary or os.environ.get("STRATA_BIN", str(ROOT / "target/release/strata"))
        self.dir = tempfile.TemporaryDirectory(prefix="strata-console-")
        self.port, self.console_port = free_port(), free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.console_url = f"http://127.0.0.1:{self.console_port}"
        env = {**os.environ, "STRATA_ACCESS_KEY": ACCESS_KEY, "STRATA_SECRET_KEY": SECRET_KEY}
        self.log = open(Path(self.dir.name) / "strata.log", "wb")
        self.proc = subprocess.Popen(
            [self.binary, "serve", "--address", f"127.0.0.1:{self.port}",
             "--data", str(Path(self.dir.name) / "data.img"), "--size-bytes", str(16 << 30),
             "--console-address", f"127.0.0.1:{self.console_port}", *extra_args],
            env=env, stdout=self.log, stderr=subprocess.STDOUT)
        for _ in range(300):
            try:
                with urllib.request.urlopen(self.endpoint + "/minio/health/ready", timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("strata did not become ready")

    def s3(self):
        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                            aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
                            config=Config(max_pool_connections=64, retries={"max_attempts": 1}))

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.close()
        self.dir.cleanup()


def browser(width: int = 1280, height: int = 800):
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={width},{height}"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def sign_in(driver, server: Server):
    driver.get(server.console_url + "/")
    wait = WebDriverWait(driver, 20, poll_frequency=0.01)
    wait.until(lambda d: d.find_element(By.ID, "login").is_displayed())
    driver.find_element(By.ID, "login-access").send_keys(ACCESS_KEY)
    driver.find_element(By.ID, "login-secret").send_keys(SECRET_KEY)
    driver.find_element(By.ID, "login-submit").click()
    wait.until(lambda d: d.find_element(By.ID, "top").is_displayed())


@contextlib.contextmanager
def console_session(extra_args=()):
    """A server and a function that opens a browser signed in to its
    console; both are closed on the way out."""
    server = Server(extra_args=extra_args)
    drivers = []

    def open_browser():
        driver = browser()
        drivers.append(driver)
        sign_in(driver, server)
        return driver

    try:
        yield server, open_browser
    finally:
        for driver in drivers:
            driver.quit()
        server.stop()
