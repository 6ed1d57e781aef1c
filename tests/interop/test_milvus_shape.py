"""A Milvus-shaped workload: binlogs, stats and delta logs under
files/{insert,stats,delta}_log/..., index files in 16 MiB slices, uploaded
with the MinIO SDK (16 MiB multipart parts, like minio-go) and boto3 (10 MiB
parts, like Arrow/the AWS C++ SDK); listed with ListObjectsV2 encoding-type=url
and ListObjects v1 by prefix; read back with ranged GETs; a segment dropped
with a batch delete. Every byte is checked."""

from __future__ import annotations

import hashlib
import io
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from boto3.s3.transfer import TransferConfig
from minio.deleteobjects import DeleteObject

from s3util import KiB, MiB, etag_multipart, split_parts

ROOT = "files"
COLL = 449216473214270001
PART = 449216473214270002
SEGMENTS = [449216473214270010, 449216473214270011]
ROWS = 1000
DIM = 768
FIELDS = {0: "int64", 1: "int64", 100: "int64", 101: "vector", 102: "varchar"}
SLICE = 16 * MiB
BUILD, VER = 449216473214271000, 1


def binlog(seg: int, field: int) -> bytes:
    """A binlog-like blob: a small header then the column data."""
    rng = np.random.default_rng(seg * 1000 + field)
    header = b"\xfe\xca\xfe\xca" + seg.to_bytes(8, "little") + field.to_bytes(8, "little")
    kind = FIELDS[field]
    if kind == "vector":
        payload = rng.standard_normal(ROWS * DIM, dtype=np.float32).tobytes()  # ~2.9 MiB
    elif kind == "int64":
        payload = rng.integers(0, 2 ** 62, ROWS, dtype=np.int64).tobytes()
    else:
        payload = "".join(f"varchar-{seg}-{i}-{'v' * (i % 50)}\x00" for i in range(ROWS)).encode()
    return header + payload


def index_blob(seg: int, size: int) -> bytes:
    rng = np.random.default_rng(seg)
    return rng.standard_normal(size // 4, dtype=np.float32).tobytes() + bytes(size % 4)


def insert_key(seg, field, log):
    return f"{ROOT}/insert_log/{COLL}/{PART}/{seg}/{field}/{log}"


def index_prefix(seg):
    return f"{ROOT}/index_files/{BUILD}_{VER}_{seg}_101"


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def minio_get(mc, bucket, key, offset=0, length=0) -> bytes:
    r = mc.get_object(bucket, key, offset=offset, length=length)
    try:
        return r.read()
    finally:
        r.close()
        r.release_conn()


@pytest.fixture
def milvus_data(mc, s3, bucket):
    """Upload the whole layout; returns {key: bytes} of what was written."""
    objects: dict[str, bytes] = {}
    for seg in SEGMENTS:
        for field in FIELDS:
            objects[insert_key(seg, field, 449216473214280000 + field)] = binlog(seg, field)
        objects[f"{ROOT}/stats_log/{COLL}/{PART}/{seg}/100/449216473214290001"] = \
            np.random.default_rng(seg + 5).bytes(64 * KiB)
        objects[f"{ROOT}/delta_log/{COLL}/{PART}/{seg}/449216473214295001"] = \
            np.random.default_rng(seg + 6).bytes(3 * KiB + 11)

    # Binlogs through the MinIO SDK, in parallel like Milvus' flush.
    def put_minio(item):
        k, v = item
        mc.put_object(bucket, k, io.BytesIO(v), len(v), part_size=SLICE)
    with ThreadPoolExecutor(4) as ex:
        list(ex.map(put_minio, objects.items()))

    # Segment 0's index: 40 MiB in 16 MiB slices via MinIO (unknown length,
    # 16 MiB parts), plus the whole index as one 16 MiB-part multipart object.
    seg0_index = index_blob(SEGMENTS[0], 40 * MiB + 1000)
    for n, s in enumerate(split_parts(seg0_index, SLICE)):
        k = f"{index_prefix(SEGMENTS[0])}/index_file_{n}"
        mc.put_object(bucket, k, io.BytesIO(s), length=-1, part_size=SLICE)
        objects[k] = s
    whole = f"{index_prefix(SEGMENTS[0])}/whole_index"
    r = mc.put_object(bucket, whole, io.BytesIO(seg0_index), len(seg0_index), part_size=SLICE)
    assert r.etag.strip('"') == etag_multipart(split_parts(seg0_index, SLICE)).strip('"')
    objects[whole] = seg0_index

    # Segment 1's index slices via boto3 with 10 MiB multipart parts.
    cfg = TransferConfig(multipart_threshold=10 * MiB, multipart_chunksize=10 * MiB, max_concurrency=4)
    seg1_index = index_blob(SEGMENTS[1], 21 * MiB + 5)
    for n, s in enumerate(split_parts(seg1_index, SLICE)):
        k = f"{index_prefix(SEGMENTS[1])}/index_file_{n}"
        s3.upload_fileobj(io.BytesIO(s), bucket, k, Config=cfg)
        objects[k] = s
        want = etag_multipart(split_parts(s, 10 * MiB)) if len(s) > 10 * MiB else None
        if want:
            assert s3.head_object(Bucket=bucket, Key=k)["ETag"] == want
    return objects


def test_milvus_layout_round_trip(mc, s3, bucket, milvus_data):
    objects = milvus_data

    # Every object: HEAD (Milvus stats before reading) and full GET, both SDKs.
    for k, v in objects.items():
        st = mc.stat_object(bucket, k)
        assert st.size == len(v), k
        assert sha(minio_get(mc, bucket, k)) == sha(v), k
    for k, v in objects.items():
        assert sha(s3.get_object(Bucket=bucket, Key=k)["Body"].read()) == sha(v), k

    # ListObjectsV2 with encoding-type=url (minio-go's default), explicit here.
    for seg in SEGMENTS:
        prefix = f"{ROOT}/insert_log/{COLL}/{PART}/{seg}/"
        r = s3.list_objects_v2(Bucket=bucket, Prefix=prefix, EncodingType="url")
        got = {urllib.parse.unquote_plus(o["Key"]): o["Size"] for o in r["Contents"]}
        assert got == {k: len(v) for k, v in objects.items() if k.startswith(prefix)}
        # minio SDK listing (v2, url-encoded, recursive), and v1 by prefix like the AWS C++ SDK.
        assert {o.object_name for o in mc.list_objects(bucket, prefix=prefix, recursive=True)} == set(got)
        v1 = s3.list_objects(Bucket=bucket, Prefix=prefix)
        assert {o["Key"] for o in v1["Contents"]} == set(got)
        # Milvus walks field directories with a delimiter.
        r = s3.list_objects_v2(Bucket=bucket, Prefix=prefix, Delimiter="/")
        assert sorted(p["Prefix"] for p in r["CommonPrefixes"]) == sorted(f"{prefix}{f}/" for f in FIELDS)

    r = s3.list_objects_v2(Bucket=bucket, Prefix=f"{ROOT}/index_files/", Delimiter="/")
    assert sorted(p["Prefix"] for p in r["CommonPrefixes"]) == sorted(f"{index_prefix(s)}/" for s in SEGMENTS)
    all_keys = set()
    for page in s3.get_paginator("list_objects").paginate(Bucket=bucket, Prefix=f"{ROOT}/"):
        all_keys |= {o["Key"] for o in page.get("Contents", [])}
    assert all_keys == set(objects)

    # Ranged reads of index slices, the way the index loader reads them.
    for seg in SEGMENTS:
        for k in sorted(k for k in objects if k.startswith(index_prefix(seg) + "/index_file_")):
            v = objects[k]
            n = len(v)
            ranges = [(0, 4096), (n // 2, 1 * MiB), (n - 100, 100), (0, n), (SLICE // 3, 5 * MiB)]
            for off, ln in ranges:
                if off >= n:
                    continue
                ln = min(ln, n - off)
                got = s3.get_object(Bucket=bucket, Key=k, Range=f"bytes={off}-{off + ln - 1}")["Body"].read()
                assert got == v[off:off + ln], (k, off, ln)
                assert minio_get(mc, bucket, k, offset=off, length=ln) == v[off:off + ln], (k, off, ln)
    whole = objects[f"{index_prefix(SEGMENTS[0])}/whole_index"]
    for off in (SLICE - 10, 2 * SLICE - 1, len(whole) - SLICE):
        got = s3.get_object(Bucket=bucket, Key=f"{index_prefix(SEGMENTS[0])}/whole_index",
                            Range=f"bytes={off}-{off + SLICE - 1}")["Body"].read()
        assert got == whole[off:off + SLICE], off

    # Vector data decodes to the floats that were written.
    vkey = insert_key(SEGMENTS[1], 101, 449216473214280101)
    raw = minio_get(mc, bucket, vkey)
    vec = np.frombuffer(raw[20:], dtype=np.float32).reshape(ROWS, DIM)
    assert np.array_equal(vec, np.frombuffer(objects[vkey][20:], dtype=np.float32).reshape(ROWS, DIM))


def test_milvus_drop_segment_batch_delete(mc, s3, bucket, milvus_data):
    objects = milvus_data
    dropped = SEGMENTS[0]
    seg_prefixes = [f"{ROOT}/{kind}/{COLL}/{PART}/{dropped}/" for kind in ("insert_log", "stats_log", "delta_log")]
    victims = sorted(o.object_name for p in seg_prefixes
                     for o in mc.list_objects(bucket, prefix=p, recursive=True))
    assert victims == sorted(k for k in objects if any(k.startswith(p) for p in seg_prefixes))
    # Half with the MinIO SDK's batch delete, half with boto3's.
    half = len(victims) // 2
    assert list(mc.remove_objects(bucket, [DeleteObject(k) for k in victims[:half]])) == []
    r = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in victims[half:]], "Quiet": True})
    assert r.get("Errors", []) == []
    # Index files of the dropped segment go too.
    idx = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=index_prefix(dropped) + "/")["Contents"]]
    r = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in idx]})
    assert sorted(d["Key"] for d in r["Deleted"]) == sorted(idx)

    for p in seg_prefixes + [index_prefix(dropped) + "/"]:
        assert s3.list_objects_v2(Bucket=bucket, Prefix=p)["KeyCount"] == 0, p
        assert list(mc.list_objects(bucket, prefix=p, recursive=True)) == []
    gone = set(victims) | set(idx)
    remaining = {k: v for k, v in objects.items() if k not in gone}
    assert remaining and all(str(SEGMENTS[1]) in k for k in remaining)
    listed = set()
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{ROOT}/"):
        listed |= {o["Key"] for o in page.get("Contents", [])}
    assert listed == set(remaining)
    for k, v in remaining.items():
        assert sha(s3.get_object(Bucket=bucket, Key=k)["Body"].read()) == sha(v), k
