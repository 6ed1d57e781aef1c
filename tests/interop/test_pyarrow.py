"""Apache Arrow's S3 filesystem (the AWS C++ SDK underneath; what Milvus
storage v2 uses) against Strata: Parquet write/read, ranged reads, listings,
a multipart output stream, copy/move/delete."""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from s3util import KiB, MiB, rand_bytes, sha256_hex

os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture(scope="module")
def arrow_fs(server):
    return pafs.S3FileSystem(
        access_key=server.access_key, secret_key=server.secret_key,
        endpoint_override=server.netloc, scheme="http", region="us-east-1",
        connect_timeout=5, request_timeout=120,
        retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=1))


def vector_table(rows: int, dim: int, seed: int = 7) -> pa.Table:
    rng = np.random.default_rng(seed)
    vecs = rng.standard_normal((rows, dim), dtype=np.float32)
    return pa.table({
        "id": pa.array(np.arange(rows, dtype=np.int64)),
        "name": pa.array([f"row-{i}-{'x' * (i % 13)}" for i in range(rows)]),
        "score": pa.array(rng.random(rows, dtype=np.float64)),
        "vec": pa.FixedSizeListArray.from_arrays(pa.array(vecs.ravel(), type=pa.float32()), dim).cast(
            pa.list_(pa.float32())),
    })


def test_parquet_write_read_round_trip(arrow_fs, s3, bucket):
    table = vector_table(4000, 128)  # ~2 MiB of float32
    path = f"{bucket}/dir/file.parquet"
    pq.write_table(table, path, filesystem=arrow_fs, row_group_size=1000)

    back = pq.read_table(path, filesystem=arrow_fs)
    assert back.equals(table)
    assert back.column("vec").type == pa.list_(pa.float32())

    raw = s3.get_object(Bucket=bucket, Key="dir/file.parquet")["Body"].read()
    assert 1 * MiB < len(raw) < 5 * MiB
    assert raw[:4] == b"PAR1" and raw[-4:] == b"PAR1"
    assert pq.read_table(pa.BufferReader(raw)).equals(table)
    info = arrow_fs.get_file_info(path)
    assert info.type == pafs.FileType.File and info.size == len(raw)

    # Column projection and single row groups are served by ranged GETs.
    ids = pq.read_table(path, filesystem=arrow_fs, columns=["id"])
    assert ids.column("id").to_pylist() == list(range(4000))
    with arrow_fs.open_input_file(path) as f:
        pf = pq.ParquetFile(f)
        assert pf.metadata.num_rows == 4000 and pf.metadata.num_row_groups == 4
        rg = pf.read_row_group(2)
        assert rg.equals(table.slice(2000, 1000))


def test_open_input_file_read_at(arrow_fs, s3, bucket):
    data = rand_bytes(6 * MiB + 321, "arrow-read-at")
    s3.put_object(Bucket=bucket, Key="blob/data.bin", Body=data)
    with arrow_fs.open_input_file(f"{bucket}/blob/data.bin") as f:
        assert f.size() == len(data)
        for off, n in ((0, 1), (0, 4096), (MiB - 7, 14), (3 * MiB, 2 * MiB), (len(data) - 100, 100),
                       (len(data) - 1, 1), (12345, 0)):
            assert f.read_at(n, off) == data[off:off + n], (off, n)
        # Reads past the end are clipped.
        assert f.read_at(1000, len(data) - 10) == data[-10:]
        f.seek(5 * MiB)
        assert f.read(1024) == data[5 * MiB:5 * MiB + 1024]
        assert f.tell() == 5 * MiB + 1024
    with arrow_fs.open_input_stream(f"{bucket}/blob/data.bin") as f:
        assert sha256_hex(f.read()) == sha256_hex(data)


def test_get_file_info_listing(arrow_fs, s3, bucket):
    objs = {"ds/a.bin": 10, "ds/b.bin": 2000, "ds/sub/c.bin": 300, "ds/sub/deeper/d.bin": 1, "other.bin": 5}
    for k, n in objs.items():
        s3.put_object(Bucket=bucket, Key=k, Body=rand_bytes(n, k))

    infos = arrow_fs.get_file_info(pafs.FileSelector(f"{bucket}/ds", recursive=True))
    files = {i.path: i.size for i in infos if i.type == pafs.FileType.File}
    dirs = {i.path for i in infos if i.type == pafs.FileType.Directory}
    assert files == {f"{bucket}/{k}": n for k, n in objs.items() if k.startswith("ds/")}
    assert dirs == {f"{bucket}/ds/sub", f"{bucket}/ds/sub/deeper"}

    infos = arrow_fs.get_file_info(pafs.FileSelector(f"{bucket}/ds", recursive=False))
    assert {(i.path, i.type) for i in infos} == {
        (f"{bucket}/ds/a.bin", pafs.FileType.File), (f"{bucket}/ds/b.bin", pafs.FileType.File),
        (f"{bucket}/ds/sub", pafs.FileType.Directory)}

    assert arrow_fs.get_file_info(f"{bucket}/ds").type == pafs.FileType.Directory
    assert arrow_fs.get_file_info(f"{bucket}/ds/missing.bin").type == pafs.FileType.NotFound
    assert arrow_fs.get_file_info(bucket).type == pafs.FileType.Directory

    arrow_fs.create_dir(f"{bucket}/made/empty")
    assert arrow_fs.get_file_info(f"{bucket}/made/empty").type == pafs.FileType.Directory


def test_output_stream_multipart(arrow_fs, s3, bucket):
    """> 10 MiB through open_output_stream: Arrow uploads 10 MiB parts."""
    size = 26 * MiB + 17
    data = rand_bytes(size, "arrow-big")
    path = f"{bucket}/big/stream.bin"
    with arrow_fs.open_output_stream(path) as out:
        for off in range(0, size, 1 * MiB + 3):
            out.write(data[off:off + 1 * MiB + 3])
    head = s3.head_object(Bucket=bucket, Key="big/stream.bin")
    assert head["ContentLength"] == size
    etag = head["ETag"].strip('"')
    assert "-" in etag and int(etag.rsplit("-", 1)[1]) >= 2, f"expected a multipart ETag, got {etag}"
    assert sha256_hex(s3.get_object(Bucket=bucket, Key="big/stream.bin")["Body"].read()) == sha256_hex(data)
    with arrow_fs.open_input_file(path) as f:
        assert f.read_at(64 * KiB, 10 * MiB - 100) == data[10 * MiB - 100:10 * MiB - 100 + 64 * KiB]


def test_small_output_stream_and_metadata(arrow_fs, s3, bucket):
    path = f"{bucket}/small/meta.txt"
    with arrow_fs.open_output_stream(path, metadata={"Content-Type": "text/x-arrow"}) as out:
        out.write(b"small arrow write")
    assert s3.get_object(Bucket=bucket, Key="small/meta.txt")["Body"].read() == b"small arrow write"
    assert s3.head_object(Bucket=bucket, Key="small/meta.txt")["ContentType"] == "text/x-arrow"
    # An empty file.
    with arrow_fs.open_output_stream(f"{bucket}/small/empty"):
        pass
    assert s3.head_object(Bucket=bucket, Key="small/empty")["ContentLength"] == 0


def test_copy_move_delete(arrow_fs, s3, bucket):
    data = rand_bytes(300 * KiB, "arrow-copy")
    s3.put_object(Bucket=bucket, Key="cp/src.bin", Body=data)
    arrow_fs.copy_file(f"{bucket}/cp/src.bin", f"{bucket}/cp/copy.bin")
    arrow_fs.move(f"{bucket}/cp/copy.bin", f"{bucket}/cp/moved.bin")
    assert s3.get_object(Bucket=bucket, Key="cp/moved.bin")["Body"].read() == data
    assert arrow_fs.get_file_info(f"{bucket}/cp/copy.bin").type == pafs.FileType.NotFound
    arrow_fs.delete_file(f"{bucket}/cp/moved.bin")
    assert arrow_fs.get_file_info(f"{bucket}/cp/moved.bin").type == pafs.FileType.NotFound
    arrow_fs.delete_dir_contents(f"{bucket}/cp")
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="cp/").get("Contents", [])
            if not o["Key"].endswith("/")] == []


def test_partitioned_dataset(arrow_fs, bucket):
    table = vector_table(3000, 16, seed=3).append_column(
        "part", pa.array([f"p{i % 3}" for i in range(3000)]))
    root = f"{bucket}/dataset"
    pq.write_to_dataset(table, root, partition_cols=["part"], filesystem=arrow_fs)
    infos = arrow_fs.get_file_info(pafs.FileSelector(root, recursive=True))
    assert sorted({i.path.split("/")[2] for i in infos if i.type == pafs.FileType.File}) == \
        ["part=p0", "part=p1", "part=p2"]
    back = pq.read_table(root, filesystem=arrow_fs).sort_by("id")
    assert back.column("id").to_pylist() == list(range(3000))
    assert back.column("vec").to_pylist() == table.column("vec").to_pylist()
    assert [str(p) for p in back.column("part").to_pylist()] == [f"p{i % 3}" for i in range(3000)]
