#!/usr/bin/env python3
"""Table of an s3bench.sh run: Strata beside the peer (s3s-fs, or an
encrypting Strata with --sse) and fio.

Reads the JSON lines the run wrote: s3load rows (label "server/test"), fio
rows, peak RSS samples and on-disk footprints. Usage: s3bench_report.py FILE
"""
import json
import sys

STRATA = "strata"

# (test, phase, title, metric, fio case, fio field)
TESTS = [
    ("get-4k", "get", "GET 4 KiB, 64 clients", "ops_per_s", "randread_4k", "read_iops"),
    ("put-4k", "put", "PUT 4 KiB, 64 clients", "ops_per_s", None, None),
    ("get-16m-ranges", "get", "GET 16 MiB ranges of 64 MiB, 8 clients", "mb_per_s", "seq_read", "read_mb_per_s"),
    ("put-256m", "put", "PUT 256 MiB multipart, 4 clients", "mb_per_s", "seq_write", "write_mb_per_s"),
    ("milvus", "insert", "Milvus insert (binlogs)", "mb_per_s", "seq_write", "write_mb_per_s"),
    ("milvus", "index", "Milvus index (read vectors, write index)", "mb_per_s", None, None),
    ("milvus", "load", "Milvus load (list, 1 MiB ranges, whole slices)", "mb_per_s", "seq_read", "read_mb_per_s"),
    ("milvus", "compaction", "Milvus compaction (read 2, write 1, delete)", "mb_per_s", None, None),
]
UNITS = {"ops_per_s": "ops/s", "mb_per_s": "MB/s"}
FIO_UNITS = {"read_iops": "IOPS", "write_iops": "IOPS", "read_mb_per_s": "MB/s", "write_mb_per_s": "MB/s"}


def ratio(a, b):
    return f"{a / b:.2f}" if a is not None and b else "-"


def num(x):
    if x is None:
        return "-"
    return f"{x:,.0f}" if x >= 100 else f"{x:.1f}"


def mib(x):
    return f"{x / 2**20:,.0f} MiB" if x is not None else "-"


def main(path):
    runs, fio, rss, foot = {}, {}, {}, {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line.startswith("{"):
                continue
            row = json.loads(line)
            kind = row.get("kind")
            if kind == "fio":
                fio[row["case"]] = row
            elif kind == "rss":
                rss[(row["server"], row["test"])] = row["vm_hwm_bytes"]
            elif kind == "footprint":
                foot[(row["server"], row["when"])] = row["bytes"]
            elif "label" in row and "/" in row["label"]:
                server, test = row["label"].split("/", 1)
                runs[(server, test, row["phase"])] = row
    # The peer is whichever other server the run measured.
    peers = {server for (server, _, _) in runs} - {STRATA}
    peer = peers.pop() if peers else "s3s-fs"

    head = ["test", "unit", "Strata", peer, f"Strata ÷ {peer}", "fio", "Strata ÷ fio",
            "Strata p50 / p99 ms", f"{peer} p50 / p99 ms", "errors S / P"]
    rows = []
    for test, phase, title, metric, fio_case, fio_field in TESTS:
        s, p = runs.get((STRATA, test, phase)), runs.get((peer, test, phase))
        if not s and not p:
            continue
        sv = s[metric] if s else None
        pv = p[metric] if p else None
        fv = fio[fio_case][fio_field] if fio_case in fio else None
        fio_cell = f"{num(fv)} {FIO_UNITS[fio_field]}" if fv is not None else "-"
        lat = lambda r: f"{r['latency_ms_p50']:.1f} / {r['latency_ms_p99']:.1f}" if r else "-"
        errs = f"{s['errors'] if s else '-'} / {p['errors'] if p else '-'}"
        rows.append([title, UNITS[metric], num(sv), num(pv), ratio(sv, pv), fio_cell,
                     ratio(sv, fv),
                     lat(s), lat(p), errs])
    print_table(head, rows)

    print()
    tests = []
    for (_, test) in rss:
        if test not in tests:
            tests.append(test)
    rrows = [[t, mib(rss.get((STRATA, t))), mib(rss.get((peer, t))),
              ratio(rss.get((STRATA, t)), rss.get((peer, t)))] for t in tests]
    print_table(["peak RSS (VmHWM) after", "Strata", peer, f"Strata ÷ {peer}"], rrows)

    print()
    frows = []
    for server in (STRATA, peer):
        before, after = foot.get((server, "before-milvus")), foot.get((server, "after-milvus"))
        frows.append([server, mib(after), mib(after - before if None not in (before, after) else None)])
    if any(r[1] != "-" for r in frows):
        print_table(["on disk after the Milvus replay", "total (all tests)", "grown during the replay"], frows)
        grown = {}
        for server in (STRATA, peer):
            before, after = foot.get((server, "before-milvus")), foot.get((server, "after-milvus"))
            grown[server] = after - before if after is not None and before is not None else None
        total = ratio(foot.get((STRATA, "after-milvus")), foot.get((peer, "after-milvus")))
        print(f"Strata ÷ {peer}: total {total}, grown during the replay {ratio(grown[STRATA], grown[peer])}"
              " (Strata: allocated blocks of its data file, du -B1; s3s-fs: du -sB1 of its directory)")


def print_table(head, rows):
    widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(len(head))]
    line = lambda r: "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |"
    print(line(head))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print(line(r))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
