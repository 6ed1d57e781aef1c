"""A real browser (headless Chromium) on one origin talking to Strata on
another: CORS decides whether its presigned fetch() PUT may go out, and an
HTML form POST upload (which CORS does not govern) is held to its POST
policy's conditions."""

from __future__ import annotations

import os
import tempfile
import time

import pytest
from botocore.exceptions import ClientError

from interop_conftest import unique_bucket_name

FETCH_PUT = """
const [url, body, done] = arguments;
fetch(url, {method: 'PUT', body: body, headers: {'x-request-note': 'from the page'}})
  .then(r => r.text().then(t => done({ok: true, status: r.status, text: t})))
  .catch(e => done({ok: false, error: String(e)}));
"""


def stored(s3, bucket, key):
    try:
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as e:
        assert e.response["Error"]["Code"] in ("NoSuchKey", "404"), e.response
        return None


@pytest.fixture
def bucket(s3):
    name = unique_bucket_name("browser")
    s3.create_bucket(Bucket=name)
    yield name
    for o in s3.list_objects_v2(Bucket=name).get("Contents", []):
        s3.delete_object(Bucket=name, Key=o["Key"])
    s3.delete_bucket(Bucket=name)


def test_a_preflighted_put_needs_the_buckets_cors_rules(browser, page_origin, s3, bucket):
    browser.get(page_origin)
    url = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "from-page"},
                                    ExpiresIn=300)
    # No CORS rules: the browser's preflight is refused and the PUT never
    # goes out.
    answer = browser.execute_async_script(FETCH_PUT, url, "blocked body")
    assert answer["ok"] is False, answer
    assert stored(s3, bucket, "from-page") is None
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": [{
        "AllowedOrigins": [page_origin], "AllowedMethods": ["PUT"],
        "AllowedHeaders": ["*"], "ExposeHeaders": ["ETag"]}]})
    answer = browser.execute_async_script(FETCH_PUT, url, "allowed body")
    assert answer == {"ok": True, "status": 200, "text": ""}, answer
    assert stored(s3, bucket, "from-page") == b"allowed body"
    # A rule for another origin does not let this page in.
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": [{
        "AllowedOrigins": ["http://elsewhere.example"], "AllowedMethods": ["PUT"],
        "AllowedHeaders": ["*"]}]})
    url2 = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "second"},
                                     ExpiresIn=300)
    answer = browser.execute_async_script(FETCH_PUT, url2, "blocked again")
    assert answer["ok"] is False, answer
    assert stored(s3, bucket, "second") is None


FORM = """
const [action, fields, done] = arguments;
const form = document.createElement('form');
form.method = 'POST'; form.action = action; form.enctype = 'multipart/form-data';
form.id = 'upload';
for (const [k, v] of Object.entries(fields)) {
  const input = document.createElement('input');
  input.type = 'hidden'; input.name = k; input.value = v; form.appendChild(input);
}
const file = document.createElement('input');
file.type = 'file'; file.name = 'file'; file.id = 'file';
form.appendChild(file);
document.body.appendChild(form);
done(true);
"""


def submit_form(browser, page_origin, post, key, content):
    """Fills a real form on the page with the POST policy's fields and a
    file from disk, submits it, and returns the page the server answered."""
    from selenium.webdriver.common.by import By

    browser.get(page_origin)
    fields = dict(post["fields"], key=key)
    browser.execute_async_script(FORM, post["url"], fields)
    with tempfile.NamedTemporaryFile("wb", suffix=".txt", delete=False) as f:
        f.write(content)
        path = f.name
    try:
        browser.find_element(By.ID, "file").send_keys(path)
        browser.execute_script("document.getElementById('upload').submit();")
        deadline = time.monotonic() + 20
        while browser.current_url.startswith(page_origin) and time.monotonic() < deadline:
            time.sleep(0.05)
        return browser.page_source
    finally:
        os.unlink(path)


def test_a_form_post_upload_is_held_to_its_policy(browser, page_origin, s3, bucket):
    post = s3.generate_presigned_post(
        bucket, "uploads/${filename}",
        Fields={"success_action_status": "201"},
        Conditions=[["starts-with", "$key", "uploads/"], ["content-length-range", 1, 1024],
                    {"success_action_status": "201"}],
        ExpiresIn=300)
    page = submit_form(browser, page_origin, post, "uploads/form.txt", b"a file from a form")
    assert "uploads/form.txt" in page, page[:500]
    assert stored(s3, bucket, "uploads/form.txt") == b"a file from a form"
    # Over content-length-range: refused, nothing stored.
    page = submit_form(browser, page_origin, post, "uploads/big.txt", b"x" * 4096)
    assert "EntityTooLarge" in page or "Policy" in page, page[:500]
    assert stored(s3, bucket, "uploads/big.txt") is None
    # A key outside the policy's prefix: refused, nothing stored.
    page = submit_form(browser, page_origin, post, "elsewhere/form.txt", b"small")
    assert "Policy" in page or "AccessDenied" in page, page[:500]
    assert stored(s3, bucket, "elsewhere/form.txt") is None
