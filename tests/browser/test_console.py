"""The web console in a real headless Chromium against the real server, and
its API without a browser: sessions (missing, forged, expired, logged
out), foreign origins, slowed failed logins, uploads with progress and
cancel, browsing, download, delete, share links, previews that must not
run stored scripts, the dashboard's charts, a read-only user whose writes
the server refuses, a phone-width screen and the keyboard alone. Each
browser test saves a screenshot under target/test-output/console."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from interop_conftest import make_boto3_client, unique_bucket_name

SHOTS = Path(os.environ.get("STRATA_TEST_OUT", "target/test-output")) / "console"
MiB = 1 << 20


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def console(server_factory):
    port = _free_port()
    srv = server_factory("console", extra_args=[
        "--console-address", f"127.0.0.1:{port}", "--console-sample-interval-ms", "500"])
    srv.console_url = f"http://127.0.0.1:{port}"
    return srv


@pytest.fixture(scope="module")
def cs3(console):
    return make_boto3_client(console)


@pytest.fixture
def shot(browser, request):
    SHOTS.mkdir(parents=True, exist_ok=True)
    yield lambda name: browser.save_screenshot(str(SHOTS / f"{request.node.name}-{name}.png"))
    browser.save_screenshot(str(SHOTS / f"{request.node.name}-end.png"))


def call(url, method="GET", body=None, cookie=None, origin=None, timeout=30):
    """(status, headers, body) of one request without a browser."""
    req = urllib.request.Request(url, method=method, data=body)
    if body is not None:
        req.add_header("content-type", "application/json")
    if cookie:
        req.add_header("cookie", cookie)
    if origin:
        req.add_header("origin", origin)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def login_cookie(srv, access_key=None, secret_key=None):
    body = json.dumps({"access_key": access_key or srv.access_key,
                       "secret_key": secret_key or srv.secret_key}).encode()
    status, headers, _ = call(srv.console_url + "/api/login", "POST", body)
    assert status == 200
    cookie = headers["set-cookie"]
    for attribute in ("HttpOnly", "SameSite=Strict", "Max-Age="):
        assert attribute in cookie, cookie
    return cookie.split(";")[0]


def wait(browser, condition, timeout=20):
    return WebDriverWait(browser, timeout, poll_frequency=0.05).until(lambda d: condition(d))


def sign_in(browser, srv, access_key=None, secret_key=None):
    browser.delete_all_cookies()
    browser.get(srv.console_url + "/")
    wait(browser, lambda d: d.find_element(By.ID, "login").is_displayed())
    browser.find_element(By.ID, "login-access").send_keys(access_key or srv.access_key)
    browser.find_element(By.ID, "login-secret").send_keys(secret_key or srv.secret_key)
    browser.find_element(By.ID, "login-submit").click()
    wait(browser, lambda d: d.find_element(By.ID, "top").is_displayed())


def go(browser, srv, hash_):
    browser.get(f"{srv.console_url}/#/{hash_}")


# ------------------------------------------------------------------ the API


def test_bucket_usage_is_counted_and_reused_for_a_few_seconds(console, cs3):
    """The buckets page's counts: objects, bytes, stored bytes (a body
    stored twice counts once). A count is answered again for 5 s without a
    new walk of the bucket: a user refreshing in a loop cannot keep a core
    walking keys."""
    cookie = login_cookie(console)
    bucket = unique_bucket_name("usage")
    cs3.create_bucket(Bucket=bucket)
    body = os.urandom(300 * 1024)  # chunked, not inline
    for key in ("a", "b"):
        cs3.put_object(Bucket=bucket, Key=key, Body=body)
    cs3.put_object(Bucket=bucket, Key="c", Body=b"small")

    def usage():
        status, _, answer = call(f"{console.console_url}/api/usage/{bucket}", cookie=cookie)
        assert status == 200, answer
        return json.loads(answer)

    first = usage()
    assert first["objects"] == 3 and first["versions"] == 3, first
    assert first["logical_bytes"] == 2 * len(body) + 5, first
    assert len(body) <= first["stored_bytes"] < 1.2 * len(body), first  # "b" is "a"'s chunks
    cs3.put_object(Bucket=bucket, Key="d", Body=b"more")
    assert usage() == first
    time.sleep(5.2)
    assert usage()["objects"] == 4
    assert call(f"{console.console_url}/api/usage/no-such-{bucket}", cookie=cookie)[0] == 404


def test_the_api_needs_a_live_session_and_its_own_origin(console):
    url = console.console_url
    assert call(url + "/api/session")[0] == 401
    assert call(url + "/api/s3/")[0] == 401
    assert call(url + "/api/session", cookie="strata_console=" + "ab" * 32)[0] == 401
    cookie = login_cookie(console)
    status, _, body = call(url + "/api/session", cookie=cookie)
    assert status == 200 and json.loads(body)["access_key"] == console.access_key
    assert call(url + "/api/s3/", cookie=cookie)[0] == 200
    # A state-changing request from another origin is refused even with a
    # valid cookie; from the console's own origin it goes through.
    bucket = unique_bucket_name("origin")
    assert call(f"{url}/api/s3/{bucket}", "PUT", b"", cookie, origin="http://evil.example")[0] == 403
    assert call(f"{url}/api/s3/{bucket}", "PUT", b"", cookie, origin=url)[0] == 200
    assert call(f"{url}/api/s3/{bucket}", "DELETE", None, cookie, origin=url)[0] == 204
    # Logging out ends the session on the server, not only in the browser.
    assert call(url + "/api/logout", "POST", b"", cookie, origin=url)[0] == 204
    assert call(url + "/api/session", cookie=cookie)[0] == 401


def test_sessions_expire_and_failed_logins_are_slowed(server_factory):
    port = _free_port()
    srv = server_factory("console-short", extra_args=[
        "--console-address", f"127.0.0.1:{port}", "--console-session-s", "1"])
    srv.console_url = f"http://127.0.0.1:{port}"
    cookie = login_cookie(srv)
    assert call(srv.console_url + "/api/session", cookie=cookie)[0] == 200
    time.sleep(1.5)
    assert call(srv.console_url + "/api/session", cookie=cookie)[0] == 401
    wrong = json.dumps({"access_key": srv.access_key, "secret_key": "not-it"}).encode()
    took = []
    for _ in range(4):
        start = time.monotonic()
        assert call(srv.console_url + "/api/login", "POST", wrong)[0] == 401
        took.append(time.monotonic() - start)
    # 0, 250 ms, 500 ms, 1 s: each failure doubles the next wait.
    assert took[0] < 0.2 and 0.2 < took[1] < took[2] < took[3] and took[3] > 0.9, took
    # The right secret still gets in (after the wait), and clears the count.
    login_cookie(srv)
    start = time.monotonic()
    assert call(srv.console_url + "/api/login", "POST", wrong)[0] == 401
    assert time.monotonic() - start < 0.2


# ------------------------------------------------------------------ browser


def test_login_upload_browse_download_delete_and_logout(browser, console, cs3, shot, tmp_path):
    browser.delete_all_cookies()
    browser.get(console.console_url + "/")
    wait(browser, lambda d: d.find_element(By.ID, "login").is_displayed())
    browser.find_element(By.ID, "login-access").send_keys(console.access_key)
    browser.find_element(By.ID, "login-secret").send_keys("wrong secret")
    browser.find_element(By.ID, "login-submit").click()
    wait(browser, lambda d: "Wrong" in d.find_element(By.ID, "login-error").text)
    shot("wrong-password")
    sign_in(browser, console)

    bucket = unique_bucket_name("console")
    go(browser, console, "buckets")
    field = wait(browser, lambda d: d.find_element(By.ID, "new-bucket"))
    field.send_keys(bucket)
    browser.find_element(By.ID, "create-bucket-submit").click()
    wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, f'tr[data-bucket="{bucket}"]'))
    cs3.head_bucket(Bucket=bucket)

    # Into a prefix, then a 40 MiB upload (multipart) on a throttled
    # network: the bar is seen at two values on the way.
    go(browser, console, f"bucket/{bucket}/docs/")
    wait(browser, lambda d: d.find_element(By.ID, "upload-input"))
    data = os.urandom(40 * MiB)
    big = tmp_path / "big.bin"
    big.write_bytes(data)
    browser.set_network_conditions(offline=False, latency=1, download_throughput=500 * MiB,
                                   upload_throughput=8 * MiB)
    try:
        browser.find_element(By.ID, "upload-input").send_keys(str(big))
        seen = set()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            rows = browser.find_elements(By.CSS_SELECTOR, ".upload progress")
            if rows:
                value = float(rows[0].get_attribute("value"))
                if 0 < value < 40 * MiB:
                    seen.add(value)
                if browser.find_element(By.CSS_SELECTOR, ".upload .upload-status").text == "done":
                    break
            time.sleep(0.05)
        assert len(seen) >= 2, seen
        shot("uploaded")
        assert browser.find_element(By.CSS_SELECTOR, ".upload .upload-status").text == "done"

        # A second upload, cancelled on the way: nothing of it remains.
        other = tmp_path / "cancelled.bin"
        other.write_bytes(os.urandom(40 * MiB))
        browser.find_element(By.ID, "upload-input").send_keys(str(other))
        wait(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, ".upload")) == 2
             and float(d.find_elements(By.CSS_SELECTOR, ".upload progress")[1].get_attribute("value")) > 0)
        browser.find_elements(By.CSS_SELECTOR, ".cancel-upload")[1].click()
        wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".upload .upload-status")[1].text == "cancelled")
    finally:
        browser.delete_network_conditions()
    time.sleep(0.5)
    assert cs3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    with pytest.raises(ClientError):
        cs3.head_object(Bucket=bucket, Key="docs/cancelled.bin")
    assert cs3.get_object(Bucket=bucket, Key="docs/big.bin")["Body"].read() == data

    # Browse from the bucket's root into the prefix, download, compare.
    go(browser, console, f"bucket/{bucket}/")
    wait(browser, lambda d: d.find_element(By.LINK_TEXT, "docs/")).click()
    row = wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, 'tr[data-key="docs/big.bin"]'))
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    browser.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    row.find_element(By.LINK_TEXT, "Download").click()
    wait(browser, lambda d: (downloads / "big.bin").exists()
         and (downloads / "big.bin").stat().st_size == len(data), timeout=60)
    assert (downloads / "big.bin").read_bytes() == data
    shot("browsed")

    # Delete (pressed twice), then log out: the session is gone.
    delete = row.find_element(By.CSS_SELECTOR, "button.danger")
    delete.click()
    delete.click()
    wait(browser, lambda d: not d.find_elements(By.CSS_SELECTOR, 'tr[data-key="docs/big.bin"]'))
    with pytest.raises(ClientError):
        cs3.head_object(Bucket=bucket, Key="docs/big.bin")
    browser.find_element(By.ID, "logout").click()
    wait(browser, lambda d: d.find_element(By.ID, "login").is_displayed())
    browser.get(console.console_url + "/")
    wait(browser, lambda d: d.find_element(By.ID, "login").is_displayed())


def test_previews_never_run_stored_scripts_and_share_links_work(browser, console, cs3, shot):
    bucket = unique_bucket_name("preview")
    cs3.create_bucket(Bucket=bucket)
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>window.top.pwned = 1; document.title = "pwned"</script><text>hi</text></svg>'
    html = b'<html><body><script>window.top.pwned = 2; document.title = "pwned"</script>hello</body></html>'
    cs3.put_object(Bucket=bucket, Key="evil.svg", Body=svg, ContentType="image/svg+xml")
    cs3.put_object(Bucket=bucket, Key="evil.html", Body=html, ContentType="text/html")
    cs3.put_object(Bucket=bucket, Key="note.json", Body=b'{"a": 1}', ContentType="application/json")
    sign_in(browser, console)
    for key, needle in (("evil.svg", "<script>"), ("evil.html", "<script>"), ("note.json", '"a": 1')):
        go(browser, console, f"bucket/{bucket}/")
        row = wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, f'tr[data-key="{key}"]'))
        row.find_element(By.XPATH, ".//button[text()='Details']").click()
        pre = wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, "#preview pre"))
        assert needle in pre.text, pre.text
        assert browser.execute_script("return window.pwned === undefined")
        assert browser.title != "pwned"
    shot("preview")
    # Opened directly from the console's origin, the stored HTML is
    # sandboxed: its script does not run.
    browser.get(f"{console.console_url}/api/s3/{bucket}/evil.html")
    time.sleep(0.3)
    assert browser.title != "pwned"

    # A share link, fetched with no session at all.
    go(browser, console, f"bucket/{bucket}/")
    row = wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, 'tr[data-key="note.json"]'))
    row.find_element(By.XPATH, ".//button[text()='Details']").click()
    wait(browser, lambda d: d.find_element(By.ID, "share")).click()
    link = wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, "#share-link a"))
    url = link.get_attribute("href")
    assert url.startswith(f"http://127.0.0.1:{console.port}/{bucket}/note.json?"), url
    status, _, body = call(url)
    assert (status, body) == (200, b'{"a": 1}')
    # And in the browser with every cookie gone: the link alone is enough.
    browser.delete_all_cookies()
    browser.get(url)
    assert '{"a": 1}' in browser.find_element(By.TAG_NAME, "body").text
    shot("shared")


def test_the_dashboard_charts_a_load_run(browser, console, cs3, shot):
    bucket = unique_bucket_name("load")
    cs3.create_bucket(Bucket=bucket)
    for round_ in range(3):
        for i in range(40):
            cs3.put_object(Bucket=bucket, Key=f"k{i}", Body=os.urandom(4096))
            cs3.get_object(Bucket=bucket, Key=f"k{i}")["Body"].read()
        time.sleep(0.6)
    sign_in(browser, console)
    go(browser, console, "dashboard")
    charts = wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "svg.chart"))
    assert len(charts) == 4
    requests = browser.find_element(By.CSS_SELECTOR, 'svg.chart[aria-label^="Requests per second"]')
    assert int(requests.get_attribute("data-points")) >= 2
    series = {p.get_attribute("data-series"): p.get_attribute("points")
              for p in requests.find_elements(By.TAG_NAME, "polyline")}
    assert "PutObject" in series and "GetObject" in series, series
    assert len(series["PutObject"].split()) >= 2
    device = browser.find_element(By.ID, "device").text
    assert "used of" in device
    shot("dashboard")


def test_a_read_only_user_is_refused_by_the_server_not_only_hidden(browser, console, cs3, shot):
    made = subprocess.run([console.binary, "admin", "--endpoint", console.endpoint_url, "--json",
                           "user", "add", unique_bucket_name("viewer"), "--policy", "readonly"],
                          capture_output=True, text=True, timeout=30,
                          env={**os.environ, "STRATA_ACCESS_KEY": console.access_key,
                               "STRATA_SECRET_KEY": console.secret_key})
    assert made.returncode == 0, made.stderr
    viewer = json.loads(made.stdout.strip().splitlines()[-1])
    bucket = unique_bucket_name("ro")
    cs3.create_bucket(Bucket=bucket)
    sign_in(browser, console, viewer["access_key"], viewer["secret_key"])
    go(browser, console, "buckets")
    # MinIO's readonly does not list buckets: the server says so.
    wait(browser, lambda d: "AccessDenied" in d.find_element(By.ID, "buckets").text)
    field = browser.find_element(By.ID, "new-bucket")
    field.send_keys(unique_bucket_name("nope"))
    browser.find_element(By.ID, "create-bucket-submit").click()
    wait(browser, lambda d: "AccessDenied" in d.find_element(By.ID, "create-bucket").text)
    shot("refused")
    # The same write sent by hand with the viewer's session: the server
    # refuses it.
    answer = browser.execute_async_script("""
        const done = arguments[arguments.length - 1];
        fetch('/api/s3/' + arguments[0] + '/sneaky', {method: 'PUT', body: 'x'})
          .then(r => done(r.status));""", bucket)
    assert answer == 403
    with pytest.raises(ClientError):
        cs3.head_object(Bucket=bucket, Key="sneaky")
    assert browser.execute_async_script("""
        const done = arguments[arguments.length - 1];
        fetch('/api/admin/users').then(r => done(r.status));""") == 403


def test_a_phone_width_screen_and_the_keyboard_alone(browser, console, cs3, shot):
    bucket = unique_bucket_name("narrow")
    cs3.create_bucket(Bucket=bucket)
    cs3.put_object(Bucket=bucket, Key="a-rather-long-object-name-that-must-wrap/inside/the/table.txt", Body=b"x")
    browser.set_window_size(390, 844)
    try:
        browser.delete_all_cookies()
        browser.get(console.console_url + "/")
        wait(browser, lambda d: d.switch_to.active_element.get_attribute("id") == "login-access")
        active = browser.switch_to.active_element
        active.send_keys(console.access_key)
        active.send_keys(Keys.TAB)
        browser.switch_to.active_element.send_keys(console.secret_key + Keys.ENTER)
        wait(browser, lambda d: d.find_element(By.ID, "top").is_displayed())
        for view in ("buckets", "dashboard", "users", f"bucket/{bucket}/"):
            go(browser, console, view)
            time.sleep(0.5)
            wide = browser.execute_script(
                "return document.documentElement.scrollWidth - document.documentElement.clientWidth")
            assert wide <= 0, f"{view} scrolls sideways by {wide}px"
        shot("narrow")
        # From the top of the object page, Tab alone reaches the upload.
        browser.find_element(By.TAG_NAME, "body").click()
        for _ in range(40):
            browser.switch_to.active_element.send_keys(Keys.TAB)
            if browser.switch_to.active_element.get_attribute("id") == "upload-input":
                break
        assert browser.switch_to.active_element.get_attribute("id") == "upload-input"
    finally:
        browser.set_window_size(1280, 800)
    # On every page, Tab reaches every control there is.
    for view in ("buckets", f"settings/{bucket}", f"bucket/{bucket}/", "users", "dashboard"):
        go(browser, console, view)
        time.sleep(0.7)
        count = browser.execute_script('''
            const controls = [...document.querySelectorAll('a[href], button, input, select, textarea')]
              .filter((el) => el.offsetParent !== null && !el.disabled);
            controls.forEach((el, i) => { el.dataset.control = i; });
            document.activeElement && document.activeElement.blur();
            return controls.length;''')
        reached = set()
        # Keys go to the page, as a person's do (sent to a file input,
        # selenium would take them for a file name).
        for _ in range(count + 5):
            ActionChains(browser).send_keys(Keys.TAB).perform()
            mark = browser.switch_to.active_element.get_attribute("data-control")
            if mark is not None:
                reached.add(int(mark))
        assert reached == set(range(count)), f"{view}: {count} controls, Tab reached {sorted(reached)}"


def test_under_tls_the_session_cookie_is_secure(server_factory, tmp_path):
    import ssl

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    port = _free_port()
    srv = server_factory("console-tls", extra_args=[
        "--tls-cert", str(cert), "--tls-key", str(key), "--console-address", f"127.0.0.1:{port}"])
    context = ssl.create_default_context(cafile=str(cert))
    body = json.dumps({"access_key": srv.access_key, "secret_key": srv.secret_key}).encode()
    req = urllib.request.Request(f"https://127.0.0.1:{port}/api/login", method="POST", data=body,
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, context=context, timeout=30) as r:
        cookie = r.headers["set-cookie"]
    assert "; Secure" in cookie and "HttpOnly" in cookie, cookie
    # The same console over plain HTTP is not served.
    with pytest.raises(Exception):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5).read()
