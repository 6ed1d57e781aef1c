"""Encryption at rest against the real server: SSE-S3, SSE-KMS and SSE-C
with boto3 and the aws CLI (PUT, GET, HEAD, ranged reads, multipart, copies
between modes, wrong and missing keys), bucket default encryption, the
encrypt-everything setting, a search of the whole data file (and of a raw
loop device) for a marker that must not be there, kill -9 and restart, a
flipped bit caught by GET and named by fsck, fsck with and without the
master key, and a master key rotated without rewriting data."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from conftest import make_boto3_client, purge_bucket, unique_bucket_name

KEY_A = base64.b64encode(b"strata-test-master-key-A-32bytes").decode()
KEY_B = base64.b64encode(b"strata-test-master-key-B-32bytes").decode()
KEY_A2 = base64.b64encode(b"strata-test-master-key-A-rotated").decode()
MAIN_KEY = "strata-test-key"
OTHER_KEY = "second-key"
MARKER = b"SECRET-MARKER-7f3a9c"

# The key ceph/s3-tests uses, and another one.
CUSTOMER = {
    "SSECustomerAlgorithm": "AES256",
    "SSECustomerKey": base64.b64decode("pO3upElrwuEXSoFwCfnZPdSsmt/xWeFa0N9KgDijwVs="),
}
OTHER_CUSTOMER = {
    "SSECustomerAlgorithm": "AES256",
    "SSECustomerKey": base64.b64decode("6b+WOZ1T3cqZMxgThRcXAQBrS5mXKdDUphvpxptl9/4="),
}


def customer_md5(c) -> str:
    return base64.b64encode(hashlib.md5(c["SSECustomerKey"]).digest()).decode()


def copy_source_customer(c) -> dict:
    return {"CopySourceSSECustomerAlgorithm": c["SSECustomerAlgorithm"],
            "CopySourceSSECustomerKey": c["SSECustomerKey"]}


def key_file(tmp: Path, *entries: str) -> Path:
    path = tmp / f"kms-{len(entries)}-{os.getpid()}.keys"
    path.write_text("\n".join(entries) + "\n")
    return path


def marked(size: int, seed: int) -> bytes:
    """Incompressible bytes with the marker in several places."""
    data = bytearray(os.urandom(size))
    for at in range(0, size - len(MARKER), max(size // 4, len(MARKER) + 1)):
        data[at:at + len(MARKER)] = MARKER
    data[-len(MARKER):] = MARKER
    return bytes(data)


def error_of(call, **kw):
    with pytest.raises(ClientError) as e:
        call(**kw)
    return e.value.response["ResponseMetadata"]["HTTPStatusCode"], e.value.response["Error"]["Code"]


@pytest.fixture(scope="module")
def kms_server(server_factory, tmp_path_factory):
    keys = key_file(tmp_path_factory.mktemp("kms"), f"{MAIN_KEY}:{KEY_A}", f"{OTHER_KEY}:{KEY_B}")
    return server_factory("kms", extra_args=["--kms-key-file", str(keys)])


@pytest.fixture(scope="module")
def es3(kms_server):
    return make_boto3_client(kms_server)


@pytest.fixture
def ebucket(es3, request):
    name = unique_bucket_name(request.node.name)
    es3.create_bucket(Bucket=name)
    yield name
    purge_bucket(es3, name)


def test_sse_s3_and_sse_kms_round_trip_with_their_headers(es3, ebucket):
    data = marked(3 << 20, 1)
    put = es3.put_object(Bucket=ebucket, Key="s3", Body=data, ServerSideEncryption="AES256")
    assert put["ServerSideEncryption"] == "AES256"
    assert put["ETag"].strip('"') == hashlib.md5(data).hexdigest()
    got = es3.get_object(Bucket=ebucket, Key="s3")
    assert got["ServerSideEncryption"] == "AES256"
    assert got["Body"].read() == data
    head = es3.head_object(Bucket=ebucket, Key="s3")
    assert head["ServerSideEncryption"] == "AES256"

    put = es3.put_object(Bucket=ebucket, Key="kms", Body=data, ServerSideEncryption="aws:kms",
                         SSEKMSKeyId=OTHER_KEY)
    assert put["ServerSideEncryption"] == "aws:kms"
    assert put["SSEKMSKeyId"] == OTHER_KEY
    # Not the plaintext's MD5 (as on AWS), but stable.
    assert put["ETag"].strip('"') != hashlib.md5(data).hexdigest()
    got = es3.get_object(Bucket=ebucket, Key="kms")
    assert (got["ServerSideEncryption"], got["SSEKMSKeyId"]) == ("aws:kms", OTHER_KEY)
    assert got["ETag"] == put["ETag"]
    assert got["Body"].read() == data
    # Ranged reads decrypt only what they cover, across chunk boundaries.
    for first, last in [(0, 0), (1000, 1_500_000), ((1 << 20) - 7, (2 << 20) + 7),
                        (len(data) - 10, len(data) - 1)]:
        part = es3.get_object(Bucket=ebucket, Key="kms", Range=f"bytes={first}-{last}")
        assert part["Body"].read() == data[first:last + 1]

    # aws:kms without a key id uses the default key, as AWS uses aws/s3.
    put = es3.put_object(Bucket=ebucket, Key="kms-default", Body=b"x", ServerSideEncryption="aws:kms")
    assert put["SSEKMSKeyId"] == MAIN_KEY

    # A read names no SSE-S3/KMS key: AWS refuses those headers on GET and HEAD.
    def add_sse_header(params, **_):
        params["headers"]["x-amz-server-side-encryption"] = "AES256"
    es3.meta.events.register("before-call.s3.GetObject", add_sse_header)
    es3.meta.events.register("before-call.s3.HeadObject", add_sse_header)
    try:
        assert error_of(es3.get_object, Bucket=ebucket, Key="s3") == (400, "InvalidArgument")
        assert error_of(es3.head_object, Bucket=ebucket, Key="s3")[0] == 400
    finally:
        es3.meta.events.unregister("before-call.s3.GetObject", add_sse_header)
        es3.meta.events.unregister("before-call.s3.HeadObject", add_sse_header)


def test_unknown_kms_keys_and_bad_headers_are_refused_and_store_nothing(es3, ebucket):
    status, code = error_of(es3.put_object, Bucket=ebucket, Key="k", Body=b"x",
                            ServerSideEncryption="aws:kms", SSEKMSKeyId="no-such-key")
    assert (status, code) == (400, "KMS.NotFoundException")
    status, code = error_of(es3.put_object, Bucket=ebucket, Key="k", Body=b"x",
                            SSEKMSKeyId=MAIN_KEY)
    assert status == 400
    status, _ = error_of(es3.put_object, Bucket=ebucket, Key="k", Body=b"x",
                         ServerSideEncryption="AES256", **CUSTOMER)
    assert status == 400
    assert "Contents" not in es3.list_objects_v2(Bucket=ebucket)


def test_sse_without_a_master_key_is_refused_and_stores_nothing(s3, bucket):
    """The shared server has no master key configured."""
    for kw in ({"ServerSideEncryption": "AES256"},
               {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": MAIN_KEY}):
        status, code = error_of(s3.put_object, Bucket=bucket, Key="k", Body=b"x", **kw)
        assert (status, code) == (501, "NotImplemented")
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket)


def test_sse_c_needs_its_key_for_every_read(es3, ebucket):
    data = marked(300_000, 2)
    put = es3.put_object(Bucket=ebucket, Key="c", Body=data, **CUSTOMER)
    assert put["SSECustomerAlgorithm"] == "AES256"
    assert put["SSECustomerKeyMD5"] == customer_md5(CUSTOMER)
    got = es3.get_object(Bucket=ebucket, Key="c", **CUSTOMER)
    assert got["Body"].read() == data
    assert got["SSECustomerKeyMD5"] == customer_md5(CUSTOMER)
    assert es3.head_object(Bucket=ebucket, Key="c", **CUSTOMER)["ContentLength"] == len(data)
    part = es3.get_object(Bucket=ebucket, Key="c", Range="bytes=100-199999", **CUSTOMER)
    assert part["Body"].read() == data[100:200000]
    # Without the key: 400, as S3 answers; with another key: 403.
    assert error_of(es3.get_object, Bucket=ebucket, Key="c")[0] == 400
    assert error_of(es3.head_object, Bucket=ebucket, Key="c")[0] == 400
    assert error_of(es3.get_object, Bucket=ebucket, Key="c", **OTHER_CUSTOMER) == (403, "AccessDenied")
    # SSE-C headers on an object that is not SSE-C.
    es3.put_object(Bucket=ebucket, Key="plain", Body=b"plain")
    assert error_of(es3.get_object, Bucket=ebucket, Key="plain", **CUSTOMER)[0] == 400


def test_sse_c_key_md5_and_algorithm_are_checked(kms_server, ebucket):
    es3 = make_boto3_client(kms_server)
    # boto3 computes the MD5 itself; a raw header set exercises a wrong one.
    def with_headers(headers):
        def add(params, **_):
            params["headers"].update(headers)
        es3.meta.events.register_first("before-call.s3.PutObject", add)
        try:
            return error_of(es3.put_object, Bucket=ebucket, Key="bad", Body=b"x")
        finally:
            es3.meta.events.unregister("before-call.s3.PutObject", add)
    key = base64.b64encode(CUSTOMER["SSECustomerKey"]).decode()
    assert with_headers({"x-amz-server-side-encryption-customer-algorithm": "AES256",
                         "x-amz-server-side-encryption-customer-key": key,
                         "x-amz-server-side-encryption-customer-key-MD5": "AAAAAAAAAAAAAAAAAAAAAA=="})[0] == 400
    assert with_headers({"x-amz-server-side-encryption-customer-algorithm": "AES256"})[0] == 400
    assert with_headers({"x-amz-server-side-encryption-customer-algorithm": "AES128",
                         "x-amz-server-side-encryption-customer-key": key,
                         "x-amz-server-side-encryption-customer-key-MD5": customer_md5(CUSTOMER)})[0] == 400


@pytest.mark.parametrize("mode", ["sse-c", "sse-kms", "sse-s3"])
def test_multipart_uploads_are_sealed_under_the_upload_key(es3, ebucket, mode):
    enc = {"sse-c": CUSTOMER, "sse-kms": {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": MAIN_KEY},
           "sse-s3": {"ServerSideEncryption": "AES256"}}[mode]
    part_enc = CUSTOMER if mode == "sse-c" else {}
    read_enc = part_enc
    up = es3.create_multipart_upload(Bucket=ebucket, Key="mp", **enc)
    if mode == "sse-c":
        assert up["SSECustomerKeyMD5"] == customer_md5(CUSTOMER)
    else:
        assert up["ServerSideEncryption"] == enc["ServerSideEncryption"]
    parts_data = [marked(5 << 20, 3), marked(3 << 20, 4)]
    parts = []
    for n, body in enumerate(parts_data, 1):
        r = es3.upload_part(Bucket=ebucket, Key="mp", UploadId=up["UploadId"], PartNumber=n,
                            Body=body, **part_enc)
        parts.append({"PartNumber": n, "ETag": r["ETag"]})
    # Part 1 again: a fresh part, which replaces the first.
    r = es3.upload_part(Bucket=ebucket, Key="mp", UploadId=up["UploadId"], PartNumber=1,
                        Body=parts_data[0], **part_enc)
    parts[0]["ETag"] = r["ETag"]
    if mode == "sse-c":
        # A part under another customer key than the upload's.
        assert error_of(es3.upload_part, Bucket=ebucket, Key="mp", UploadId=up["UploadId"],
                        PartNumber=3, Body=b"x", **OTHER_CUSTOMER)[0] == 400
        assert error_of(es3.upload_part, Bucket=ebucket, Key="mp", UploadId=up["UploadId"],
                        PartNumber=3, Body=b"x")[0] == 400
    done = es3.complete_multipart_upload(Bucket=ebucket, Key="mp", UploadId=up["UploadId"],
                                         MultipartUpload={"Parts": parts})
    if mode != "sse-c":
        assert done["ServerSideEncryption"] == enc["ServerSideEncryption"]
    whole = b"".join(parts_data)
    assert es3.get_object(Bucket=ebucket, Key="mp", **read_enc)["Body"].read() == whole
    edge = 5 << 20
    ranged = es3.get_object(Bucket=ebucket, Key="mp", Range=f"bytes={edge - 100}-{edge + 100}", **read_enc)
    assert ranged["Body"].read() == whole[edge - 100:edge + 101]
    by_part = es3.get_object(Bucket=ebucket, Key="mp", PartNumber=2, **read_enc)
    assert by_part["Body"].read() == parts_data[1]


def test_copies_between_modes(es3, ebucket):
    data = marked(2 << 20, 5)
    es3.put_object(Bucket=ebucket, Key="s3", Body=data, ServerSideEncryption="AES256")
    es3.put_object(Bucket=ebucket, Key="c", Body=data, **CUSTOMER)
    es3.put_object(Bucket=ebucket, Key="plain", Body=data)
    cases = [
        # (source, source read headers, destination headers, destination read headers)
        ("s3", {}, {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": OTHER_KEY}, {}),
        ("s3", {}, {}, {}),
        ("c", copy_source_customer(CUSTOMER), {"ServerSideEncryption": "AES256"}, {}),
        ("c", copy_source_customer(CUSTOMER), OTHER_CUSTOMER, OTHER_CUSTOMER),
        ("plain", {}, CUSTOMER, CUSTOMER),
        ("plain", {}, {"ServerSideEncryption": "AES256"}, {}),
    ]
    for i, (src, src_enc, dst_enc, read_enc) in enumerate(cases):
        key = f"copy-{i}"
        r = es3.copy_object(Bucket=ebucket, Key=key, CopySource={"Bucket": ebucket, "Key": src},
                            **src_enc, **dst_enc)
        if "ServerSideEncryption" in dst_enc:
            assert r["ServerSideEncryption"] == dst_enc["ServerSideEncryption"]
        got = es3.get_object(Bucket=ebucket, Key=key, **read_enc)
        assert got["Body"].read() == data, key
        assert got.get("ServerSideEncryption") == dst_enc.get("ServerSideEncryption"), key
    # An SSE-C source without its key cannot be copied.
    assert error_of(es3.copy_object, Bucket=ebucket, Key="nope",
                    CopySource={"Bucket": ebucket, "Key": "c"})[0] == 400
    # Part copy from an SSE-C source into an SSE-KMS upload.
    up = es3.create_multipart_upload(Bucket=ebucket, Key="pc", ServerSideEncryption="aws:kms")
    r = es3.upload_part_copy(Bucket=ebucket, Key="pc", UploadId=up["UploadId"], PartNumber=1,
                             CopySource={"Bucket": ebucket, "Key": "c"},
                             CopySourceRange="bytes=10-1000009", **copy_source_customer(CUSTOMER))
    es3.complete_multipart_upload(Bucket=ebucket, Key="pc", UploadId=up["UploadId"], MultipartUpload={
        "Parts": [{"PartNumber": 1, "ETag": r["CopyPartResult"]["ETag"]}]})
    assert es3.get_object(Bucket=ebucket, Key="pc")["Body"].read() == data[10:1000010]


def test_bucket_default_encryption(es3, ebucket):
    assert error_of(es3.get_bucket_encryption, Bucket=ebucket) == (
        404, "ServerSideEncryptionConfigurationNotFoundError")
    es3.put_bucket_encryption(Bucket=ebucket, ServerSideEncryptionConfiguration={"Rules": [{
        "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": OTHER_KEY}}]})
    rule = es3.get_bucket_encryption(Bucket=ebucket)["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": "aws:kms",
                                                         "KMSMasterKeyID": OTHER_KEY}
    put = es3.put_object(Bucket=ebucket, Key="d", Body=b"default")
    assert (put["ServerSideEncryption"], put["SSEKMSKeyId"]) == ("aws:kms", OTHER_KEY)
    # Headers still win over the default.
    put = es3.put_object(Bucket=ebucket, Key="h", Body=b"headers", ServerSideEncryption="AES256")
    assert put["ServerSideEncryption"] == "AES256"
    assert error_of(es3.put_bucket_encryption, Bucket=ebucket, ServerSideEncryptionConfiguration={
        "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms",
                                                          "KMSMasterKeyID": "no-such-key"}}]})[0] == 400
    es3.delete_bucket_encryption(Bucket=ebucket)
    assert "ServerSideEncryption" not in es3.put_object(Bucket=ebucket, Key="p", Body=b"plain")
    assert es3.get_object(Bucket=ebucket, Key="d")["Body"].read() == b"default"


def test_aws_cli_sse_and_sse_c(kms_server, ebucket, tmp_path):
    aws = Path(sys.executable).parent / "aws"
    home = tmp_path / "home"
    home.mkdir()
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home),
           "AWS_ACCESS_KEY_ID": kms_server.access_key, "AWS_SECRET_ACCESS_KEY": kms_server.secret_key,
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
           "AWS_MAX_ATTEMPTS": "1"}

    def run(*args):
        p = subprocess.run([str(aws), "--endpoint-url", kms_server.endpoint_url, *args], env=env,
                           capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stderr[-2000:]
        return p.stdout

    src = tmp_path / "src.bin"
    src.write_bytes(marked(9 << 20, 6))  # multipart in the CLI (8 MiB threshold)
    key = "cli-customer-key-of-32-bytes-abc"  # the CLI base64-encodes it
    run("s3", "cp", str(src), f"s3://{ebucket}/sse", "--sse", "AES256")
    run("s3", "cp", str(src), f"s3://{ebucket}/kms", "--sse", "aws:kms", "--sse-kms-key-id", OTHER_KEY)
    run("s3", "cp", str(src), f"s3://{ebucket}/ssec", "--sse-c", "AES256", "--sse-c-key", key)
    head = json.loads(run("s3api", "head-object", "--bucket", ebucket, "--key", "kms"))
    assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == ("aws:kms", OTHER_KEY)
    for name, extra in [("sse", []), ("kms", []), ("ssec", ["--sse-c", "AES256", "--sse-c-key", key])]:
        out = tmp_path / f"{name}.out"
        run("s3", "cp", f"s3://{ebucket}/{name}", str(out), *extra)
        assert out.read_bytes() == src.read_bytes(), name


def _scan(path: Path, needle: bytes) -> bool:
    """Whether `needle` occurs anywhere in the file or device at `path`."""
    overlap = len(needle) - 1
    tail = b""
    with open(path, "rb") as f:
        while True:
            block = f.read(16 << 20)
            if not block:
                return False
            if needle in tail + block:
                return True
            tail = block[-overlap:]


def _fill_with_secrets(c, bucket) -> dict:
    """Every way a marker reaches the device under encryption: each mode,
    a multipart upload's parts (complete, still open, aborted), overwritten
    versions, and data that compaction will move. Returns what some keys
    hold, to read back."""
    held = {"s3": marked(1 << 20, 10), "c": marked(2 << 20, 12), "moved-0": marked(3 << 20, 40)}
    c.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    c.put_object(Bucket=bucket, Key="s3", Body=held["s3"], ServerSideEncryption="AES256")
    c.put_object(Bucket=bucket, Key="kms", Body=marked(40_000, 11), ServerSideEncryption="aws:kms",
                 SSEKMSKeyId=OTHER_KEY)
    c.put_object(Bucket=bucket, Key="c", Body=held["c"], **CUSTOMER)
    c.put_object(Bucket=bucket, Key="small", Body=MARKER * 3, ServerSideEncryption="AES256")
    for i in range(3):  # overwritten versions
        c.put_object(Bucket=bucket, Key="versions", Body=marked(300_000, 20 + i), **CUSTOMER)
    for state in ("complete", "open", "aborted"):
        up = c.create_multipart_upload(Bucket=bucket, Key=f"mp-{state}", ServerSideEncryption="AES256")
        r = c.upload_part(Bucket=bucket, Key=f"mp-{state}", UploadId=up["UploadId"], PartNumber=1,
                          Body=marked(5 << 20, 30))
        if state == "complete":
            c.complete_multipart_upload(Bucket=bucket, Key=f"mp-{state}", UploadId=up["UploadId"],
                                        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": r["ETag"]}]})
        elif state == "aborted":
            c.abort_multipart_upload(Bucket=bucket, Key=f"mp-{state}", UploadId=up["UploadId"])
    # Data moved by compaction: a few objects deleted so that their
    # segment's live data is copied elsewhere by `strata compact`.
    for i in range(4):
        c.put_object(Bucket=bucket, Key=f"moved-{i}", Body=held.get(f"moved-{i}") or marked(3 << 20, 40),
                     ServerSideEncryption="AES256")
        c.put_object(Bucket=bucket, Key=f"filler-{i}", Body=os.urandom(16 << 20))
        c.delete_object(Bucket=bucket, Key=f"filler-{i}",
                        VersionId=c.head_object(Bucket=bucket, Key=f"filler-{i}")["VersionId"])
    return held


def test_no_marker_reaches_the_device_in_the_clear(server_factory, tmp_path):
    keys = key_file(tmp_path, f"{MAIN_KEY}:{KEY_A}", f"{OTHER_KEY}:{KEY_B}")
    srv = server_factory("marker", extra_args=["--kms-key-file", str(keys)])
    c = make_boto3_client(srv)
    c.create_bucket(Bucket="secrets")
    held = _fill_with_secrets(c, "secrets")
    srv.stop()
    compacted = subprocess.run([srv.binary, "compact", str(srv.data_path), "--json",
                                "--target-space-amp", "1.0"], capture_output=True, text=True, timeout=300)
    assert compacted.returncode == 0, compacted.stderr
    assert json.loads(compacted.stdout.strip().splitlines()[-1])["bytes_copied"] > 0, compacted.stdout
    assert not _scan(srv.data_path, MARKER), "a marker was found in the clear"
    # Everything is still there, read back through the server.
    srv.start()
    c = make_boto3_client(srv)
    for key, body in held.items():
        extra = CUSTOMER if key == "c" else {}
        assert c.get_object(Bucket="secrets", Key=key, **extra)["Body"].read() == body, key
    # The search can fail: the same server stores a plaintext marker.
    c.put_object(Bucket="secrets", Key="plain", Body=marked(100_000, 50))
    srv.stop()
    assert _scan(srv.data_path, MARKER)


def _attach_loop(backing: Path) -> str:
    name = subprocess.run(["losetup", "--find"], capture_output=True, text=True,
                          check=True).stdout.strip()
    if not os.path.exists(name):
        # Some containers drop a loop device's node when it is detached.
        os.mknod(name, 0o660 | stat.S_IFBLK, os.makedev(7, int(name.removeprefix("/dev/loop"))))
    subprocess.run(["losetup", name, str(backing)], check=True, capture_output=True)
    return name


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("losetup") is None,
                    reason="loop devices need root and losetup")
def test_no_marker_on_a_raw_loop_device_with_encrypt_everything(server_factory, tmp_path):
    backing = tmp_path / "loop.img"
    with open(backing, "wb") as f:
        f.truncate(512 << 20)
    loop = _attach_loop(backing)
    try:
        keys = key_file(tmp_path, f"{MAIN_KEY}:{KEY_A}")
        subprocess.run([os.environ["STRATA_BIN"], "format", loop, "--segment-size-bytes",
                        str(16 << 20)], check=True, capture_output=True)
        srv = server_factory("loop", extra_args=["--kms-key-file", str(keys),
                                                 "--encrypt-new-objects", "true"])
        srv.stop()
        srv.data_path = Path(loop)
        srv.start()
        c = make_boto3_client(srv)
        c.create_bucket(Bucket="appliance")
        # No SSE headers at all, as Milvus writes.
        body = marked(3 << 20, 60)
        put = c.put_object(Bucket="appliance", Key="segment", Body=body)
        assert put["ServerSideEncryption"] == "AES256"
        c.put_object(Bucket="appliance", Key="inline", Body=MARKER * 10)
        assert c.get_object(Bucket="appliance", Key="segment")["Body"].read() == body
        srv.stop()
        assert not _scan(Path(loop), MARKER)
    finally:
        subprocess.run(["losetup", "-d", loop], check=False)


def _tool(srv, *args, keys: Path | None = None):
    """Runs an offline strata tool on the server's (stopped) data file."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("STRATA_KMS_KEY_FILE", "STRATA_KMS_KEYS", "MINIO_KMS_SECRET_KEY")}
    cmd = [srv.binary, *args, str(srv.data_path)]
    if keys is not None:
        cmd += ["--kms-key-file", str(keys)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)


def _fsck(srv, keys: Path | None = None):
    run = _tool(srv, "fsck", "--json", keys=keys)
    assert run.returncode in (0, 1), run.stderr
    return run.returncode, json.loads(run.stdout.strip().splitlines()[-1])["report"]


def _chunks(srv, bucket: str, key: str):
    run = _tool(srv, "inspect", "--object", f"{bucket}/{key}")
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)["chunks"]


def test_encrypted_objects_survive_kill9_and_a_flipped_bit_is_named(server_factory, tmp_path):
    keys = key_file(tmp_path, f"{MAIN_KEY}:{KEY_A}")
    srv = server_factory("crash", extra_args=["--kms-key-file", str(keys)])
    c = make_boto3_client(srv)
    c.create_bucket(Bucket="crashy")
    held = {
        "s3": (os.urandom(300_000), {"ServerSideEncryption": "AES256"}),
        "kms": (os.urandom(300_000), {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": MAIN_KEY}),
        "c": (os.urandom(300_000), CUSTOMER),
    }
    for key, (body, enc) in held.items():
        c.put_object(Bucket="crashy", Key=key, Body=body, **enc)
    srv.kill9()
    srv.start()
    c = make_boto3_client(srv)
    for key, (body, enc) in held.items():
        read = CUSTOMER if key == "c" else {}
        assert c.get_object(Bucket="crashy", Key=key, **read)["Body"].read() == body, key
    srv.stop()

    # fsck says how it checked each encrypted object: tags need the key.
    code, with_keys = _fsck(srv, keys)
    assert code == 0, with_keys
    assert (with_keys["encrypted_verified"], with_keys["encrypted_structural"]) == (2, 1)
    code, without = _fsck(srv)
    assert code == 0, without
    assert (without["encrypted_verified"], without["encrypted_structural"]) == (0, 3)

    chunk = _chunks(srv, "crashy", "s3")[0]
    with open(srv.data_path, "r+b") as f:
        f.seek(chunk["device_offset"] + chunk["len"] // 2)
        byte = f.read(1)[0]
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte ^ 0x10]))
    for report in (_fsck(srv, keys), _fsck(srv)):
        code, found = report
        assert code == 1, found
        assert [(o["bucket"], o["key"]) for o in found["unreadable_objects"]] == [("crashy", "s3")]
    srv.start()
    c = make_boto3_client(srv)
    with pytest.raises(Exception):
        c.get_object(Bucket="crashy", Key="s3")["Body"].read()
    assert c.get_object(Bucket="crashy", Key="kms")["Body"].read() == held["kms"][0]


def test_a_rotated_master_key_rewraps_data_keys_without_moving_data(server_factory, tmp_path):
    old = key_file(tmp_path, f"{MAIN_KEY}:{KEY_A}")
    srv = server_factory("rotate", extra_args=["--kms-key-file", str(old)])
    c = make_boto3_client(srv)
    c.create_bucket(Bucket="rotating")
    bodies = {"s3": os.urandom(200_000), "kms": os.urandom(200_000)}
    c.put_object(Bucket="rotating", Key="s3", Body=bodies["s3"], ServerSideEncryption="AES256")
    c.put_object(Bucket="rotating", Key="kms", Body=bodies["kms"], ServerSideEncryption="aws:kms",
                 SSEKMSKeyId=MAIN_KEY)
    srv.stop()
    before = {k: _chunks(srv, "rotating", k) for k in bodies}

    # The new generation is listed after the old: the server re-wraps every
    # data key under it at start.
    both = tmp_path / "rotating.keys"
    both.write_text(f"{MAIN_KEY}:{KEY_A}\n{MAIN_KEY}:{KEY_A2}\n")
    srv.extra_args = ["--kms-key-file", str(both)]
    srv.start()
    srv.stop()
    new_only = tmp_path / "new.keys"
    new_only.write_text(f"{MAIN_KEY}:{KEY_A2}\n")
    assert {k: _chunks(srv, "rotating", k) for k in bodies} == before, "data was rewritten"
    code, report = _fsck(srv, new_only)
    assert code == 0 and report["encrypted_verified"] == 2, report

    srv.extra_args = ["--kms-key-file", str(new_only)]
    srv.start()
    c = make_boto3_client(srv)
    for key, body in bodies.items():
        assert c.get_object(Bucket="rotating", Key=key)["Body"].read() == body, key
    # The old key alone no longer opens them: it was really replaced.
    srv.stop()
    code, report = _fsck(srv, old)
    assert code == 1, report


def _non_loopback_address() -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.123", 9))
            address = s.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


@pytest.mark.skipif(_non_loopback_address() is None, reason="no non-loopback IPv4 address")
def test_sse_c_over_plain_http_is_refused_off_loopback(server_factory):
    address = _non_loopback_address()
    srv = server_factory("offloop")
    srv.stop()
    srv.host = address
    srv.start()
    c = make_boto3_client(srv)
    c.create_bucket(Bucket="remote")
    assert error_of(c.put_object, Bucket="remote", Key="k", Body=b"x", **CUSTOMER) == (400, "InvalidRequest")
    with pytest.raises(ClientError):
        c.head_object(Bucket="remote", Key="k")
    # With the explicit setting, the same request is taken.
    srv.stop()
    srv.extra_args = ["--sse-c-over-http", "true"]
    srv.start()
    c = make_boto3_client(srv)
    c.put_object(Bucket="remote", Key="k", Body=b"x", **CUSTOMER)
    assert c.get_object(Bucket="remote", Key="k", **CUSTOMER)["Body"].read() == b"x"
