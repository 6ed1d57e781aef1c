#!/usr/bin/env python3
"""A real Milvus (PyPI's milvus 2.3.5: Milvus standalone with its own etcd)
on one S3 server, through minio-go as production Milvus on MinIO, timing
each phase of one workload; and the table of several servers' runs.

  milvus_bench.py run --server NAME --endpoint URL --bucket B --workdir DIR --out FILE
                      [--rows N] [--batch N] [--queries N] [--drop-caches]
  milvus_bench.py report FILE

run: a fresh Milvus in DIR/milvus-NAME stores everything in the server
(keys from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY); one JSON line per
phase is appended to FILE. Run by benches/milvus.sh in <repo>/.venv-milvus.
"""

from __future__ import annotations

# numpy, pymilvus and milvus are imported where used, so that `report` runs
# on any Python.

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import traceback
from pathlib import Path
from urllib.parse import urlparse

COLLECTION = "bench"
INDEX = "embedding_hnsw"
DIM = 768
CENTRES = 200
TOP_K = 10
HNSW = {"index_type": "HNSW", "metric_type": "L2", "params": {"M": 16, "efConstruction": 64}}
SEARCH = {"metric_type": "L2", "params": {"ef": 128}}
# Milvus's own waits poll every 0.5 s; ours every 0.1 s, and give up after
# these (a phase that takes longer is broken, not slow).
POLL_S = 0.1
TIMEOUT_S = {"flush": 600, "index": 3600, "load": 1200, "compaction": 1200}


def vectors(n: int, seed: int, batch: int):
    """Embedding-like data: points around 200 centres, so that nearest
    neighbours mean something (in uniform noise of 768 dimensions every
    point is about as far from every other, and recall says nothing).
    Made a batch at a time, in float32, to bound the temporaries."""
    import numpy as np

    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((CENTRES, DIM), dtype=np.float32)
    out = np.empty((n, DIM), dtype=np.float32)
    for at in range(0, n, batch):
        m = min(batch, n - at)
        v = centres[rng.integers(0, CENTRES, m)] + 0.35 * rng.standard_normal((m, DIM), dtype=np.float32)
        out[at:at + m] = v / np.linalg.norm(v, axis=1, keepdims=True)
    return out


def wait_until(done, phase: str):
    deadline = time.monotonic() + TIMEOUT_S[phase]
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{phase} not done after {TIMEOUT_S[phase]} s")
        time.sleep(POLL_S)


def drop_page_cache():
    """So that a file-backed server reads its disk (root only)."""
    subprocess.run(["sync"], check=True)
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3")
    except OSError as e:
        print(f"warning: could not drop the page cache: {e}", file=sys.stderr)


class Recorder:
    """Appends one JSON line per phase to the run's file, and echoes it."""

    def __init__(self, out: Path, server: str, rows: int):
        self.out, self.server, self.rows = out, server, rows

    def emit(self, phase: str, **fields):
        row = {"kind": "milvus", "server": self.server, "rows_total": self.rows, "phase": phase, **fields}
        line = json.dumps(row)
        print(line, flush=True)
        with open(self.out, "a") as f:
            f.write(line + "\n")


def milvus_on(base: Path, endpoint: str, bucket: str):
    """A Milvus standalone, not started yet, with its data in base and every
    file in the bucket at endpoint."""
    from milvus import MilvusServer

    url = urlparse(endpoint)
    server = MilvusServer()
    server.set_base_dir(str(base))
    for key, value in {
        "common.storageType": "minio",
        "minio.address": url.hostname,
        "minio.port": str(url.port),
        "minio.accessKeyID": os.environ["AWS_ACCESS_KEY_ID"],
        "minio.secretAccessKey": os.environ["AWS_SECRET_ACCESS_KEY"],
        "minio.bucketName": bucket,
        "minio.useSSL": "false",
    }.items():
        server.config.set(key, value)
    return server


def flush(handler) -> int:
    """Collection.flush as pymilvus 2.3.8 does it (seal, then wait for the
    flush state), polling faster; returns the number of segments sealed."""
    from pymilvus.client.prepare import Prepare
    from pymilvus.client.utils import check_status

    response = handler._stub.Flush(Prepare.flush_param([COLLECTION]))
    check_status(response.status)
    segments = list(response.coll_segIDs[COLLECTION].data)
    flush_ts = response.coll_flush_ts[COLLECTION]
    wait_until(lambda: handler.get_flush_state(segments, COLLECTION, flush_ts), "flush")
    return len(segments)


def workload(rec: Recorder, rows: int, batch: int, queries: int, drop_caches: bool):
    import numpy as np
    from pymilvus import Collection, CollectionSchema, DataType, FieldSchema, connections
    from pymilvus.client.types import IndexState, State

    # The connection's handler has the state calls that pymilvus's own
    # waits make (pinned pymilvus 2.3.8), without their 0.5 s sleeps.
    handler = connections._fetch_handler("default")
    schema = CollectionSchema([
        FieldSchema("id", DataType.INT64, is_primary=True),
        FieldSchema("title", DataType.VARCHAR, max_length=64),
        FieldSchema("embedding", DataType.FLOAT_VECTOR, dim=DIM),
    ])
    col = Collection(COLLECTION, schema)

    data = vectors(rows, 1, batch)
    batches = []
    for at in range(0, rows, batch):
        ids = list(range(at, min(at + batch, rows)))
        batches.append([ids, [f"doc {i}" for i in ids], data[ids[0]:ids[-1] + 1]])
    row_bytes = 8 + DIM * 4 + len("doc 00000")
    start = time.perf_counter()
    for b in batches:
        col.insert(b)
    seconds = time.perf_counter() - start
    rec.emit("insert", seconds=round(seconds, 3), rows=rows, batch=batch,
             rows_per_s=round(rows / seconds, 1), mb_per_s=round(rows * row_bytes / 1e6 / seconds, 1))

    start = time.perf_counter()
    segments = flush(handler)
    rec.emit("flush", seconds=round(time.perf_counter() - start, 3), segments=segments)

    start = time.perf_counter()
    col.create_index("embedding", HNSW, index_name=INDEX, sync=False)

    def index_built():
        state, reason = handler.get_index_state(COLLECTION, INDEX)
        if state == IndexState.Failed:
            raise RuntimeError(f"index build failed: {reason}")
        return state == IndexState.Finished

    wait_until(index_built, "index")
    rec.emit("index", seconds=round(time.perf_counter() - start, 3), index="HNSW M=16 efConstruction=64")

    if drop_caches:
        drop_page_cache()
    start = time.perf_counter()
    col.load(_async=True)
    wait_until(lambda: handler.get_loading_progress(COLLECTION) >= 100, "load")
    rec.emit("load", seconds=round(time.perf_counter() - start, 3), dropped_caches=drop_caches)

    rng = np.random.default_rng(2)
    picked = rng.choice(rows, queries, replace=False)
    noise = rng.standard_normal((queries, DIM), dtype=np.float32) * 0.01
    asked = data[picked] + noise
    latency_ms, found = [], []
    for q in asked:
        start = time.perf_counter()
        hits = col.search([q], "embedding", SEARCH, limit=TOP_K)
        latency_ms.append((time.perf_counter() - start) * 1000)
        found.append(set(hits[0].ids))
    # Recall against brute force: every stored vector has norm 1, so the
    # nearest in L2 is the largest dot product.
    truth = np.argpartition(-(asked @ data.T), TOP_K, axis=1)[:, :TOP_K]
    recall = sum(len(f & set(t.tolist())) for f, t in zip(found, truth)) / (TOP_K * queries)
    rec.emit("search", queries=queries, top_k=TOP_K,
             latency_ms_p50=round(float(np.percentile(latency_ms, 50)), 3),
             latency_ms_p99=round(float(np.percentile(latency_ms, 99)), 3),
             recall_at_10=round(recall, 4))

    gone = list(range(0, rows, 100))
    start = time.perf_counter()
    col.delete(f"id in {gone}")
    flush(handler)
    rec.emit("delete", seconds=round(time.perf_counter() - start, 3), rows=len(gone))

    start = time.perf_counter()
    col.compact()

    def compacted():
        state = col.get_compaction_state()
        if state.state == State.UndefiedState:
            raise RuntimeError("compaction state undefined")
        return state.state == State.Completed

    wait_until(compacted, "compaction")
    seconds = time.perf_counter() - start
    plans = len(col.get_compaction_plans().plans)
    rec.emit("compaction", seconds=round(seconds, 3), plans=plans)

    start = time.perf_counter()
    col.release()
    col.drop()
    rec.emit("drop", seconds=round(time.perf_counter() - start, 3))


def run(args):
    from pymilvus import connections

    rec = Recorder(Path(args.out), args.server, args.rows)
    base = Path(args.workdir) / f"milvus-{args.server}"
    shutil.rmtree(base, ignore_errors=True)
    server, failed = milvus_on(base, args.endpoint, args.bucket), False
    try:
        start = time.perf_counter()
        server.start()
        rec.emit("start", seconds=round(time.perf_counter() - start, 3))
        connections.connect(host="127.0.0.1", port=server.listen_port)
        workload(rec, args.rows, args.batch, args.queries, args.drop_caches)
    except Exception as e:  # the table shows which phase failed and why
        failed = True
        traceback.print_exc()
        rec.emit("error", error=f"{type(e).__name__}: {e}"[:500])
        print(f"milvus logs kept: {base / 'logs'}", file=sys.stderr)
    finally:
        connections.disconnect("default")
        if server.server_proc is not None:
            pid = server.server_proc.pid
            server.stop()
            # Milvus keeps its session file outside its data dir.
            Path(f"/tmp/milvus/server_id_{pid}").unlink(missing_ok=True)
        if not (args.keep or failed):
            shutil.rmtree(base, ignore_errors=True)
    return 1 if failed else 0


# (phase, field, title, unit, higher is better)
PHASES = [
    ("start", "seconds", "Milvus start (etcd, bucket check)", "s", False),
    ("insert", "rows_per_s", "insert (client to Milvus)", "rows/s", True),
    ("flush", "seconds", "flush (seal, binlogs to S3)", "s", False),
    ("index", "seconds", "HNSW index build (until finished)", "s", False),
    ("load", "seconds", "load (index and fields from S3)", "s", False),
    ("search", "latency_ms_p50", "search top-10, p50", "ms", False),
    ("search", "latency_ms_p99", "search top-10, p99", "ms", False),
    ("search", "recall_at_10", "recall@10 (a check, not a speed)", "", True),
    ("delete", "seconds", "delete 1% + flush", "s", False),
    ("compaction", "seconds", "compaction (until completed)", "s", False),
    ("drop", "seconds", "release + drop", "s", False),
]
STRATA = "strata"


def cell(x):
    if x is None:
        return "-"
    if isinstance(x, float) and x < 1:
        return f"{x:.3f}"
    return f"{x:,.0f}" if x >= 100 else f"{x:.2f}"


def report(path: Path):
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from s3bench_report import print_table, versus_best

    phases, extra, errors, servers, rows_total = {}, {}, {}, [], {}
    for line in path.read_text().splitlines():
        if not line.startswith("{"):
            continue
        row = json.loads(line)
        server = row["server"]
        if server not in servers:
            servers.append(server)
        if row["kind"] == "milvus":
            rows_total[server] = row["rows_total"]
            if row["phase"] == "error":
                errors[server] = row["error"]
            else:
                phases[(server, row["phase"])] = row
        elif row["kind"] == "footprint":
            extra[(server, "footprint")] = row["bytes"]
        elif row["kind"] == "rss":
            extra[(server, "rss")] = row["vm_hwm_bytes"]
    peers = [s for s in servers if s != STRATA]
    ordered = [STRATA, *peers] if STRATA in servers else peers

    def failed_at(server, phase):
        """The phases a failed run did not reach say so."""
        return "failed" if server in errors and (server, phase) not in phases else None

    table = []
    for phase, field, title, unit, higher in PHASES:
        value = {s: phases.get((s, phase), {}).get(field) for s in ordered}
        if all(v is None for v in value.values()) and not errors:
            continue
        better = "higher" if higher else "lower"
        table.append([title, unit, better,
                      *(cell(value[s]) if value[s] is not None else (failed_at(s, phase) or "-") for s in ordered),
                      versus_best(value.get(STRATA), {p: value[p] for p in peers}, max if higher else min)])
    mib = lambda b: b / 2**20 if b is not None else None
    for key, title in [("footprint", "on disk after the run"), ("rss", "server's peak RSS")]:
        value = {s: mib(extra.get((s, key))) for s in ordered}
        if any(v is not None for v in value.values()):
            table.append([title, "MiB", "lower", *(cell(value[s]) for s in ordered),
                          versus_best(value.get(STRATA), {p: value[p] for p in peers}, min)])
    sizes = sorted(set(rows_total.values()))
    print(f"Milvus 2.3.5 standalone, {', '.join(f'{n:,}' for n in sizes)} rows of 768-dim float32 vectors")
    print_table(["phase", "unit", "better", *ordered, "Strata ÷ best peer"], table)
    print("Strata ÷ best peer divides by the best peer's value (named): for times and latencies (lower is "
          "better) below 1 means Strata is faster; for rows/s and recall above 1 means Strata is ahead.")
    for server, error in errors.items():
        print(f"{server} failed: {error}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run")
    r.add_argument("--server", required=True)
    r.add_argument("--endpoint", required=True, help="http://127.0.0.1:PORT")
    r.add_argument("--bucket", required=True)
    r.add_argument("--workdir", required=True)
    r.add_argument("--out", required=True)
    r.add_argument("--rows", type=int, default=100_000)
    r.add_argument("--batch", type=int, default=5_000)
    r.add_argument("--queries", type=int, default=200)
    r.add_argument("--drop-caches", action="store_true", help="empty the page cache before load (root)")
    r.add_argument("--keep", action="store_true", help="keep Milvus's data dir")
    p = sub.add_parser("report")
    p.add_argument("file")
    args = parser.parse_args()
    if args.command == "run":
        sys.exit(run(args))
    report(Path(args.file))


if __name__ == "__main__":
    main()
