"""A real Milvus (PyPI's milvus==2.3.5: Milvus standalone with its own etcd)
storing every binlog, stats log, delta log and index file in the real
Strata binary through minio-go, as production Milvus does on MinIO.

Run by tests/milvus/run.sh (from ./test.sh) in its own venv, with
STRATA_BIN naming the server binary."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from milvus import MilvusServer
from minio import Minio
from pymilvus import Collection, CollectionSchema, DataType, FieldSchema, connections, utility

ACCESS_KEY = "AKIDSTRATAMILVUS"
SECRET_KEY = "strataMilvusSecretKey0123456789abcdefGHI"
BUCKET = "milvus-bucket"
DIM = 768
ROWS = 20_000
BATCH = 2_000


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Strata:
    """The strata binary on a fixed port over one data file; kill -9 and
    restart keep both."""

    def __init__(self, workdir: Path):
        self.port = free_port()
        self.data = workdir / "strata.img"
        self.log = workdir / "strata.log"
        self.proc = None

    def start(self):
        env = dict(os.environ, STRATA_ACCESS_KEY=ACCESS_KEY, STRATA_SECRET_KEY=SECRET_KEY, NO_COLOR="1")
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [os.environ["STRATA_BIN"], "serve", "--address", f"127.0.0.1:{self.port}",
                 "--data", str(self.data), "--size-bytes", str(8 << 30),
                 "--segment-size-bytes", str(64 << 20)],
                stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/minio/health/ready", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("strata not ready")

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(30)

    def requests(self, operation: str) -> int:
        text = urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5).read().decode()
        return sum(int(n) for n in re.findall(rf'strata_requests_total{{operation="{operation}",status="\d+"}} (\d+)', text))

    def objects(self, prefix: str) -> list:
        client = Minio(f"127.0.0.1:{self.port}", ACCESS_KEY, SECRET_KEY, secure=False)
        return list(client.list_objects(BUCKET, prefix=prefix, recursive=True))


def milvus(workdir: Path, strata: Strata) -> MilvusServer:
    server = MilvusServer()
    server.set_base_dir(str(workdir / "milvus"))
    for key, value in {
        "common.storageType": "minio",
        "minio.address": "127.0.0.1",
        "minio.port": str(strata.port),
        "minio.accessKeyID": ACCESS_KEY,
        "minio.secretAccessKey": SECRET_KEY,
        "minio.bucketName": BUCKET,
        "minio.useSSL": "false",
    }.items():
        server.config.set(key, value)
    return server


@pytest.fixture
def setup(tmp_path):
    strata = Strata(tmp_path)
    strata.start()
    server = milvus(tmp_path, strata)
    server.start()
    connections.connect(host="127.0.0.1", port=server.listen_port)
    yield strata, server
    connections.disconnect("default")
    server.stop()
    strata.stop()
    if os.environ.get("STRATA_KEEP_DATA") is None:
        shutil.rmtree(tmp_path / "milvus", ignore_errors=True)


def vectors(n: int, seed: int) -> np.ndarray:
    """Embedding-like data: points around 200 centres, so that nearest
    neighbours mean something (in uniform noise of 768 dimensions every
    point is about as far from every other, and recall says nothing)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((200, DIM)).astype(np.float32)
    v = centres[rng.integers(0, 200, n)] + 0.35 * rng.standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def collection() -> Collection:
    schema = CollectionSchema([
        FieldSchema("id", DataType.INT64, is_primary=True),
        FieldSchema("title", DataType.VARCHAR, max_length=64),
        FieldSchema("embedding", DataType.FLOAT_VECTOR, dim=DIM),
    ])
    return Collection("docs", schema)


def insert(col: Collection, data: np.ndarray, start: int = 0):
    for at in range(0, len(data), BATCH):
        ids = list(range(start + at, start + at + min(BATCH, len(data) - at)))
        col.insert([ids, [f"doc {i}" for i in ids], data[at:at + len(ids)]])


def count(col: Collection) -> int:
    return col.query(expr="", output_fields=["count(*)"])[0]["count(*)"]


SEARCH = {"metric_type": "L2", "params": {"ef": 128}}


def test_milvus_stores_everything_in_strata_and_reloads_from_it(setup, tmp_path):
    strata, server = setup
    data = vectors(ROWS, 1)
    col = collection()
    insert(col, data)
    col.flush()
    binlogs = strata.objects("files/insert_log/")
    assert binlogs, "the flush wrote insert binlogs to Strata"
    col.create_index("embedding", {"index_type": "HNSW", "metric_type": "L2",
                                   "params": {"M": 16, "efConstruction": 64}})
    utility.wait_for_index_building_complete("docs")
    assert strata.objects("files/index_files/"), "the index went to Strata"
    col.load()
    queries = data[np.random.default_rng(2).choice(ROWS, 30, replace=False)] + \
        vectors(30, 3) * 0.05
    found = col.search(queries, "embedding", SEARCH, limit=10)
    # Recall@10 against brute force.
    distances = ((queries[:, None, :] - data[None, :, :]) ** 2).sum(-1)
    truth = np.argsort(distances, axis=1)[:, :10]
    hits = sum(len(set(hit.ids) & set(t.tolist())) for hit, t in zip(found, truth))
    recall = hits / (10 * len(queries))
    print(f"recall@10 = {recall:.3f}")
    assert recall >= 0.9, recall
    # Delete 1%, compact.
    gone = list(range(0, ROWS, 100))
    col.delete(f"id in {gone}")
    col.flush()
    col.compact()
    col.wait_for_compaction_completed(timeout=120)
    assert count(col) == ROWS - len(gone)
    before = [hit.ids for hit in col.search(queries, "embedding", SEARCH, limit=10)]
    # Milvus restarts: everything comes back from Strata.
    col.release()
    connections.disconnect("default")
    server.stop()
    server.start()
    connections.connect(host="127.0.0.1", port=server.listen_port)
    col = Collection("docs")
    col.load()
    assert count(col) == ROWS - len(gone)
    after = [hit.ids for hit in col.search(queries, "embedding", SEARCH, limit=10)]
    assert after == before


def test_milvus_recovers_when_strata_is_killed_mid_flush(setup):
    strata, server = setup
    col = collection()
    insert(col, vectors(10_000, 4))
    puts_before = strata.requests("PutObject")
    flushed = threading.Thread(target=col.flush, daemon=True)
    flushed.start()
    deadline = time.monotonic() + 60
    while strata.requests("PutObject") == puts_before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert strata.requests("PutObject") > puts_before, "the flush never reached Strata"
    strata.kill9()
    time.sleep(1)
    strata.start()
    flushed.join(180)
    insert(col, vectors(2_000, 5), start=10_000)
    col.flush()
    col.create_index("embedding", {"index_type": "HNSW", "metric_type": "L2",
                                   "params": {"M": 8, "efConstruction": 32}})
    utility.wait_for_index_building_complete("docs")
    col.load()
    assert count(col) == 12_000
