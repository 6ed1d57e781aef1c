#!/usr/bin/env python3
"""Screenshots of the console for the README (docs/screenshots/): the
dashboard after a short load and the object browser. Run when the console
changes, and commit the pictures:

    .venv-browser/bin/python scripts/console_screenshots.py

Uses target/release/strata (or STRATA_BIN) on a fresh data file."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from console_kit import ROOT, console_session  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

OUT = ROOT / "docs" / "screenshots"


def main():
    with console_session(["--console-sample-interval-ms", "1000"]) as (server, open_browser):
        s3 = server.s3()
        for bucket in ("milvus-data", "backups", "public-downloads"):
            s3.create_bucket(Bucket=bucket)
        for i in range(12):
            s3.put_object(Bucket="milvus-data", Key=f"insert_log/4471/{i:04d}.binlog", Body=os.urandom(200_000))
        for name in ("config.json", "README.txt", "logo.png"):
            s3.put_object(Bucket="milvus-data", Key=name, Body=b"{}" if name.endswith("json") else b"x" * 100)
        end = time.monotonic() + 20
        while time.monotonic() < end:
            s3.put_object(Bucket="backups", Key="nightly", Body=os.urandom(64 << 10))
            s3.get_object(Bucket="milvus-data", Key="config.json")["Body"].read()
            s3.list_objects_v2(Bucket="milvus-data", MaxKeys=10)
        driver = open_browser()
        wait = WebDriverWait(driver, 20)
        OUT.mkdir(parents=True, exist_ok=True)
        driver.get(server.console_url + "/#/dashboard")
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "svg.chart polyline"))
        driver.save_screenshot(str(OUT / "dashboard.png"))
        driver.get(server.console_url + "/#/bucket/milvus-data/")
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, 'tr[data-key="config.json"]'))
        driver.save_screenshot(str(OUT / "object-browser.png"))
    print(f"screenshots in {OUT}")

if __name__ == "__main__":
    main()
