#!/usr/bin/env python3
"""The console's object browser at 100,000 keys in one prefix, timed in a
real headless Chromium: from asking for the prefix's page to its rows on
screen, and from pressing Next page to the next rows.

    .venv-browser/bin/python benches/console_browse.py [--keys N] [--runs R]

Uses target/release/strata (or STRATA_BIN) on a fresh data file."""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from console_kit import console_session  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--keys", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    with console_session() as (server, open_browser):
        s3 = server.s3()
        s3.create_bucket(Bucket="many")
        start = time.monotonic()
        with ThreadPoolExecutor(32) as pool:
            list(pool.map(lambda i: s3.put_object(Bucket="many", Key=f"in/one/prefix/{i:08d}", Body=b"x"),
                          range(args.keys)))
        print(f"filled {args.keys} keys in {time.monotonic() - start:.0f} s", file=sys.stderr)
        driver = open_browser()
        wait = WebDriverWait(driver, 60, poll_frequency=0.005)
        first, following = [], []
        for _ in range(args.runs):
            driver.get(server.console_url + "/#/buckets")
            wait.until(lambda d: d.find_elements(By.ID, "buckets"))
            t = time.monotonic()
            driver.get(server.console_url + "/#/bucket/many/in/one/prefix/")
            wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, 'tr[data-key="in/one/prefix/00000000"]'))
            first.append(time.monotonic() - t)
            t = time.monotonic()
            driver.find_element(By.ID, "next-page").click()
            wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, 'tr[data-key="in/one/prefix/00000100"]'))
            following.append(time.monotonic() - t)
    ms = lambda xs: f"median {statistics.median(xs) * 1000:.0f} ms, max {max(xs) * 1000:.0f} ms"
    print(f"{args.keys} keys in one prefix, {args.runs} runs: first page {ms(first)}; next page {ms(following)}")

if __name__ == "__main__":
    main()
