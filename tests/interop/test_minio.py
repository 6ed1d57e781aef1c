"""The MinIO Python SDK against Strata (the same wire shapes as minio-go,
which Milvus uses, minus aws-chunked signing: see test_sigv4_streaming.py)."""

from __future__ import annotations

import io
import urllib.request
from datetime import timedelta

import pytest
from minio.commonconfig import CopySource
from minio.deleteobjects import DeleteObject
from minio.error import S3Error

from conftest import make_minio_client, purge_bucket, unique_bucket_name
from s3util import (KiB, MiB, etag_multipart, file_sha256, md5_hex, put_many, rand_bytes, sha256_hex,
                    split_parts)


def read_all(mc, bucket, key, **kw) -> bytes:
    r = mc.get_object(bucket, key, **kw)
    try:
        return r.read()
    finally:
        r.close()
        r.release_conn()


def unquote(etag: str) -> str:
    return etag.strip('"')


def test_bucket_exists_make_list_remove(mc, s3):
    name = unique_bucket_name("minio-mb")
    assert mc.bucket_exists(name) is False
    mc.make_bucket(name)
    try:
        assert mc.bucket_exists(name) is True
        assert name in [b.name for b in mc.list_buckets()]
        try:
            mc.make_bucket(name)  # us-east-1 legacy behaviour: 200
        except S3Error as e:
            assert e.code in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists")
        assert mc.bucket_exists(name) is True
    finally:
        mc.remove_bucket(name)
    assert mc.bucket_exists(name) is False
    assert name not in [b.name for b in mc.list_buckets()]


def test_put_object_with_length(mc, bucket):
    data = rand_bytes(3 * MiB + 5, "minio-put")
    r = mc.put_object(bucket, "obj/known.bin", io.BytesIO(data), len(data),
                      content_type="application/x-minio-test", metadata={"owner": "minio-py"})
    assert unquote(r.etag) == md5_hex(data)
    st = mc.stat_object(bucket, "obj/known.bin")
    assert st.size == len(data)
    assert unquote(st.etag) == md5_hex(data)
    assert st.content_type == "application/x-minio-test"
    assert st.metadata.get("x-amz-meta-owner") == "minio-py"
    assert st.last_modified is not None
    assert read_all(mc, bucket, "obj/known.bin") == data


def test_put_object_unknown_length_multipart(mc, s3, bucket):
    part = 5 * MiB
    data = rand_bytes(12 * MiB + 1, "minio-stream")
    r = mc.put_object(bucket, "obj/stream.bin", io.BytesIO(data), length=-1, part_size=part)
    expected = etag_multipart(split_parts(data, part))
    assert unquote(r.etag) == unquote(expected)
    assert s3.head_object(Bucket=bucket, Key="obj/stream.bin")["ETag"] == expected
    assert read_all(mc, bucket, "obj/stream.bin") == data


def test_put_object_known_length_parallel_multipart(mc, bucket):
    part = 5 * MiB
    data = rand_bytes(16 * MiB + 333, "minio-parallel")
    r = mc.put_object(bucket, "obj/parallel.bin", io.BytesIO(data), len(data), part_size=part,
                      num_parallel_uploads=3)
    assert unquote(r.etag) == unquote(etag_multipart(split_parts(data, part)))
    assert sha256_hex(read_all(mc, bucket, "obj/parallel.bin")) == sha256_hex(data)


def test_unknown_length_single_part(mc, bucket):
    data = rand_bytes(1 * MiB, "minio-small-stream")
    r = mc.put_object(bucket, "obj/small-stream.bin", io.BytesIO(data), length=-1, part_size=5 * MiB)
    assert unquote(r.etag) == md5_hex(data)
    assert read_all(mc, bucket, "obj/small-stream.bin") == data


def test_fput_fget(mc, bucket, tmp_path):
    src = tmp_path / "upload.bin"
    src.write_bytes(rand_bytes(7 * MiB + 9, "fput"))
    mc.fput_object(bucket, "files/upload.bin", str(src), content_type="application/x-fput",
                   metadata={"source": "fput"})
    st = mc.stat_object(bucket, "files/upload.bin")
    assert st.size == src.stat().st_size
    assert st.content_type == "application/x-fput"
    dst = tmp_path / "download.bin"
    mc.fget_object(bucket, "files/upload.bin", str(dst))
    assert file_sha256(dst) == file_sha256(src)


def test_get_object_offset_length(mc, bucket):
    data = rand_bytes(2 * MiB + 100, "offsets")
    mc.put_object(bucket, "ranged", io.BytesIO(data), len(data))
    for offset, length in ((0, 1), (100, 1000), (MiB - 5, 10), (2 * MiB, 100), (123, 0), (2 * MiB + 99, 0)):
        want = data[offset:] if length == 0 else data[offset:offset + length]
        assert read_all(mc, bucket, "ranged", offset=offset, length=length) == want, (offset, length)


def test_stat_missing_object(mc, bucket):
    with pytest.raises(S3Error) as ei:
        mc.stat_object(bucket, "does/not/exist")
    assert ei.value.code in ("NoSuchKey", "NoSuchObject")
    with pytest.raises(S3Error) as ei:
        read_all(mc, bucket, "does/not/exist")
    assert ei.value.code == "NoSuchKey"


def test_list_objects(mc, bucket):
    keys = ["a/1", "a/2", "a/b/3", "a/b/c/4", "c", "sp ace/ü+1"]
    for k in keys:
        mc.put_object(bucket, k, io.BytesIO(k.encode()), len(k.encode()))
    for v1 in (False, True):
        rec = list(mc.list_objects(bucket, recursive=True, use_api_v1=v1))
        assert [o.object_name for o in rec] == sorted(keys)
        assert all(not o.is_dir for o in rec)
        assert {o.object_name: o.size for o in rec} == {k: len(k.encode()) for k in keys}
        assert {o.object_name: unquote(o.etag) for o in rec} == {k: md5_hex(k.encode()) for k in keys}

        # (the SDK yields a page's objects before its prefixes)
        top = list(mc.list_objects(bucket, use_api_v1=v1))
        assert sorted((o.object_name, o.is_dir) for o in top) == [("a/", True), ("c", False), ("sp ace/", True)]

        sub = list(mc.list_objects(bucket, prefix="a/", use_api_v1=v1))
        assert sorted((o.object_name, o.is_dir) for o in sub) == [("a/1", False), ("a/2", False), ("a/b/", True)]

        deep = list(mc.list_objects(bucket, prefix="a/b/", recursive=True, use_api_v1=v1))
        assert [o.object_name for o in deep] == ["a/b/3", "a/b/c/4"]
    after = list(mc.list_objects(bucket, recursive=True, start_after="a/b/3"))
    assert [o.object_name for o in after] == ["a/b/c/4", "c", "sp ace/ü+1"]
    plain = list(mc.list_objects(bucket, recursive=True, use_url_encoding_type=False))
    assert [o.object_name for o in plain] == sorted(keys)


def test_list_objects_many_pages(mc, s3, bucket):
    keys = [f"many/{i:04d}" for i in range(1100)]
    put_many(s3, bucket, keys, body=b"")
    for v1 in (False, True):
        got = [o.object_name for o in mc.list_objects(bucket, prefix="many/", recursive=True, use_api_v1=v1)]
        assert got == keys


def test_remove_objects_batch(mc, bucket):
    keys = [f"rm/{i:03d}" for i in range(30)]
    for k in keys:
        mc.put_object(bucket, k, io.BytesIO(b"x"), 1)
    errors = list(mc.remove_objects(bucket, [DeleteObject(k) for k in keys[:20]] + [DeleteObject("rm/none")]))
    assert errors == []
    assert [o.object_name for o in mc.list_objects(bucket, prefix="rm/", recursive=True)] == keys[20:]
    mc.remove_object(bucket, keys[20])
    assert [o.object_name for o in mc.list_objects(bucket, prefix="rm/", recursive=True)] == keys[21:]


def test_presigned_get_object(mc, bucket):
    data = rand_bytes(50 * KiB, "minio-presign")
    mc.put_object(bucket, "pre/signed ü.bin", io.BytesIO(data), len(data))
    url = mc.presigned_get_object(bucket, "pre/signed ü.bin", expires=timedelta(minutes=5))
    with urllib.request.urlopen(url, timeout=30) as r:
        assert r.status == 200
        assert r.read() == data


def test_copy_object(mc, bucket):
    data = rand_bytes(256 * KiB, "minio-copy")
    mc.put_object(bucket, "src", io.BytesIO(data), len(data), metadata={"k": "v"})
    mc.copy_object(bucket, "dst", CopySource(bucket, "src"))
    assert read_all(mc, bucket, "dst") == data
    assert mc.stat_object(bucket, "dst").metadata.get("x-amz-meta-k") == "v"


def test_client_without_region_uses_get_bucket_location(server, s3):
    """Like minio-go in Milvus: no region configured, so the SDK asks
    GET /bucket?location first."""
    name = unique_bucket_name("minio-loc")
    s3.create_bucket(Bucket=name)
    try:
        c = make_minio_client(server, region=None)
        data = b"location lookup works"
        c.put_object(name, "k", io.BytesIO(data), len(data))
        assert read_all(c, name, "k") == data
    finally:
        purge_bucket(s3, name)
