"""The browser tests reuse the interop suite's server fixtures (one strata
process per session, on loopback) and add a page origin and a browser."""

from __future__ import annotations

import http.server
import importlib.util
import socketserver
import sys
import threading
from pathlib import Path

import pytest

_interop = Path(__file__).resolve().parent.parent / "interop"
sys.path.insert(0, str(_interop))
_spec = importlib.util.spec_from_file_location("interop_conftest", _interop / "conftest.py")
interop = importlib.util.module_from_spec(_spec)
sys.modules["interop_conftest"] = interop
_spec.loader.exec_module(interop)

# Fixtures pytest finds by name in this module.
server_factory = interop.server_factory
server = interop.server
s3 = interop.s3
pytest_runtest_makereport = interop.pytest_runtest_makereport

PAGE = b"<!doctype html><html><head><title>origin</title></head><body></body></html>"


class _Page(http.server.BaseHTTPRequestHandler):
    # Chromium keeps idle (pre)connections open: never wait on one.
    timeout = 2

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="session")
def page_origin():
    """A page on another origin (another port) than the S3 endpoint."""
    socketserver.ThreadingTCPServer.daemon_threads = True
    httpd = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Page)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="session")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--disable-gpu", "--no-first-run"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    driver.set_script_timeout(20)
    driver.set_page_load_timeout(20)
    yield driver
    driver.quit()
