"""The aws CLI (v1, installed in the venv next to this Python) against Strata:
mb, cp of a 100 MiB file (multipart) both ways, sync of a nested tree both
ways, ls --recursive, rm --recursive, rb."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import purge_bucket, unique_bucket_name
from s3util import MiB, file_sha256, put_many, rand_bytes

AWS = Path(sys.executable).parent / "aws"


@pytest.fixture(scope="module")
def aws(server, tmp_path_factory):
    if not AWS.exists():
        pytest.fail(f"aws CLI not found at {AWS} (run tests/interop/setup_venv.sh)")
    home = tmp_path_factory.mktemp("awscli-home")
    config = home / "config"
    config.write_text("[default]\nregion = us-east-1\ns3 =\n    addressing_style = path\n")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "AWS_ACCESS_KEY_ID": server.access_key,
        "AWS_SECRET_ACCESS_KEY": server.secret_key,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(config),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "credentials-unused"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_RETRY_MODE": "standard",
        "AWS_MAX_ATTEMPTS": "1",
        "PYTHONUNBUFFERED": "1",
    }

    def run(*args, check=True, timeout=600):
        cmd = [str(AWS), "--endpoint-url", server.endpoint_url, *args]
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        if check and p.returncode != 0:
            pytest.fail(f"{' '.join(cmd)} exited {p.returncode}\nstdout:\n{p.stdout[-3000:]}\n"
                        f"stderr:\n{p.stderr[-3000:]}", pytrace=False)
        return p

    return run


@pytest.fixture
def cli_bucket(aws, s3):
    name = unique_bucket_name("awscli")
    aws("s3", "mb", f"s3://{name}")
    yield name
    purge_bucket(s3, name)


def write_random_file(path: Path, size: int, seed):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        left, i = size, 0
        while left:
            n = min(left, 8 * MiB)
            f.write(rand_bytes(n, f"{seed}-{i}"))
            left -= n
            i += 1


def tree_digest(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): file_sha256(p) for p in sorted(root.rglob("*")) if p.is_file()}


def test_version(aws):
    p = aws("--version")
    assert re.match(r"aws-cli/1\.", (p.stdout + p.stderr).strip()), p.stdout + p.stderr


def test_mb_ls_rb(aws, s3):
    name = unique_bucket_name("awscli-mb")
    p = aws("s3", "mb", f"s3://{name}")
    assert f"make_bucket: {name}" in p.stdout
    assert name in {b["Name"] for b in s3.list_buckets()["Buckets"]}
    assert name in aws("s3", "ls").stdout
    p = aws("s3", "rb", f"s3://{name}")
    assert f"remove_bucket: {name}" in p.stdout
    assert name not in {b["Name"] for b in s3.list_buckets()["Buckets"]}


def test_cp_100mib_round_trip(aws, s3, cli_bucket, tmp_path):
    src = tmp_path / "big.bin"
    write_random_file(src, 100 * MiB, "cli-big")
    aws("s3", "cp", str(src), f"s3://{cli_bucket}/big/big.bin")
    head = s3.head_object(Bucket=cli_bucket, Key="big/big.bin")
    assert head["ContentLength"] == 100 * MiB
    # The CLI's default 8 MiB multipart chunks: 13 parts.
    assert head["ETag"].endswith('-13"'), head["ETag"]
    dst = tmp_path / "back.bin"
    aws("s3", "cp", f"s3://{cli_bucket}/big/big.bin", str(dst))
    try:
        assert dst.stat().st_size == 100 * MiB
        assert file_sha256(dst) == file_sha256(src)
    finally:
        src.unlink()
        dst.unlink()


def test_cp_small_file_and_stdin_stdout(aws, s3, cli_bucket, tmp_path):
    src = tmp_path / "small.txt"
    src.write_bytes(b"hello from the aws cli\n")
    aws("s3", "cp", str(src), f"s3://{cli_bucket}/small.txt")
    assert s3.get_object(Bucket=cli_bucket, Key="small.txt")["Body"].read() == b"hello from the aws cli\n"
    assert s3.head_object(Bucket=cli_bucket, Key="small.txt")["ContentType"] == "text/plain"
    p = aws("s3", "cp", f"s3://{cli_bucket}/small.txt", "-")
    assert p.stdout == "hello from the aws cli\n"
    # s3 -> s3 copy (CopyObject)
    aws("s3", "cp", f"s3://{cli_bucket}/small.txt", f"s3://{cli_bucket}/copy/small.txt")
    assert s3.get_object(Bucket=cli_bucket, Key="copy/small.txt")["Body"].read() == b"hello from the aws cli\n"


def make_tree(root: Path):
    sizes = {
        "top.txt": 1234,
        "empty.bin": 0,
        "a/one.bin": 64 * 1024,
        "a/b/two.bin": 300 * 1024,
        "a/b/c/three.bin": 9 * MiB + 3,    # multipart at the CLI's 8 MiB threshold
        "a/b/c/d/deep.txt": 10,
        "with space/file name.txt": 77,
        "unicode-ü/файл.dat": 4096,
        "x/y/z/last.bin": 1,
    }
    for rel, n in sizes.items():
        write_random_file(root / rel, n, rel)
    return sizes


def test_sync_both_ways(aws, s3, cli_bucket, tmp_path):
    src = tmp_path / "src"
    sizes = make_tree(src)
    aws("s3", "sync", str(src), f"s3://{cli_bucket}/tree")
    listed = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=cli_bucket, Prefix="tree/"):
        listed.update({o["Key"]: o["Size"] for o in page.get("Contents", [])})
    assert listed == {f"tree/{k}": v for k, v in sizes.items()}

    # Nothing changed: a second sync transfers nothing (relies on sizes and
    # LastModified being right).
    p = aws("s3", "sync", str(src), f"s3://{cli_bucket}/tree")
    assert p.stdout.strip() == "", p.stdout

    dst = tmp_path / "dst"
    aws("s3", "sync", f"s3://{cli_bucket}/tree", str(dst))
    assert tree_digest(dst) == tree_digest(src)

    # Change, add and remove locally, sync with --delete.
    write_random_file(src / "a/one.bin", 65 * 1024, "changed")
    write_random_file(src / "new/dir/added.bin", 5000, "added")
    (src / "x/y/z/last.bin").unlink()
    p = aws("s3", "sync", "--delete", str(src), f"s3://{cli_bucket}/tree")
    assert "delete: s3://" in p.stdout and "last.bin" in p.stdout
    aws("s3", "sync", "--delete", f"s3://{cli_bucket}/tree", str(dst))
    assert tree_digest(dst) == tree_digest(src)
    assert not (dst / "x/y/z/last.bin").exists()


def test_ls_recursive_lists_every_key(aws, cli_bucket, tmp_path, s3):
    keys = [f"ls/{d}/obj-{i:03d}.dat" for d in ("p", "q/r", "s t") for i in range(40)] + ["ls/root.dat"]
    put_many(s3, cli_bucket, keys)
    p = aws("s3", "ls", "--recursive", f"s3://{cli_bucket}/ls/")
    lines = [ln for ln in p.stdout.splitlines() if ln.strip()]
    got = {}
    for ln in lines:
        m = re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\s+(\d+) (.+)$", ln)
        assert m, f"unexpected ls line: {ln!r}"
        got[m.group(2)] = int(m.group(1))
    assert got == {k: len(k.encode()) for k in keys}
    # Non-recursive: prefixes shown as PRE.
    p = aws("s3", "ls", f"s3://{cli_bucket}/ls/")
    pres = sorted(ln.split("PRE ", 1)[1] for ln in p.stdout.splitlines() if "PRE " in ln)
    assert pres == ["p/", "q/", "s t/"]
    assert "root.dat" in p.stdout


def test_rm_recursive(aws, s3, cli_bucket):
    keys = [f"rm/{i % 7}/{i:04d}" for i in range(120)] + ["keep/this"]
    put_many(s3, cli_bucket, keys)
    p = aws("s3", "rm", "--recursive", f"s3://{cli_bucket}/rm/")
    assert p.stdout.count("delete: s3://") == 120
    left = [o["Key"] for o in s3.list_objects_v2(Bucket=cli_bucket).get("Contents", [])]
    assert left == ["keep/this"]
    aws("s3", "rm", f"s3://{cli_bucket}/keep/this")
    assert s3.list_objects_v2(Bucket=cli_bucket)["KeyCount"] == 0
    aws("s3", "rb", f"s3://{cli_bucket}")
    assert cli_bucket not in {b["Name"] for b in s3.list_buckets()["Buckets"]}


def test_s3api_calls(aws, s3, cli_bucket):
    p = aws("s3api", "put-object", "--bucket", cli_bucket, "--key", "api/k", "--content-type", "text/x-api",
            "--metadata", "a=b")
    assert '"ETag"' in p.stdout
    p = aws("s3api", "head-object", "--bucket", cli_bucket, "--key", "api/k")
    assert '"ContentType": "text/x-api"' in p.stdout and '"a": "b"' in p.stdout
    p = aws("s3api", "list-objects-v2", "--bucket", cli_bucket, "--prefix", "api/")
    assert '"Key": "api/k"' in p.stdout
