#!/usr/bin/env python3
"""Table of an s3bench.sh or woodpecker.sh run: Strata beside each peer
(s3s-fs, SeaweedFS, or an encrypting Strata with --sse) and fio.

Reads the JSON lines the run wrote: s3load rows (label "server/test"), fio
rows, peak RSS samples and on-disk footprints. Every rate here is better
higher, so "Strata ÷ best peer" divides by the fastest peer (named in
brackets), and above 1 Strata is faster; for p99 latency, RSS and disk it
divides by the lowest, and below 1 Strata is quicker or uses less. Usage: s3bench_report.py FILE
"""
import json
import sys

STRATA = "strata"
NAMES = {STRATA: "Strata"}

# (test, phase, title, metric, fio case, fio field)
TESTS = [
    ("get-4k", "get", "GET 4 KiB, 64 clients", "ops_per_s", "randread_4k", "read_iops"),
    ("put-4k", "put", "PUT 4 KiB, 64 clients", "ops_per_s", None, None),
    ("get-16m-ranges", "get", "GET 16 MiB ranges of 64 MiB, 8 clients", "mb_per_s", "seq_read", "read_mb_per_s"),
    ("put-256m", "put", "PUT 256 MiB multipart, 4 clients", "mb_per_s", "seq_write", "write_mb_per_s"),
    ("put-256m-streaming", "put", "PUT 256 MiB multipart, 4 clients, minio-go's signed streaming", "mb_per_s", "seq_write", "write_mb_per_s"),
    ("milvus", "insert", "Milvus insert (binlogs)", "mb_per_s", "seq_write", "write_mb_per_s"),
    ("milvus", "index", "Milvus index (read vectors, write index)", "mb_per_s", None, None),
    ("milvus", "load", "Milvus load (list, 1 MiB ranges, whole slices)", "mb_per_s", "seq_read", "read_mb_per_s"),
    ("milvus", "compaction", "Milvus compaction (read 2, write 1, delete)", "mb_per_s", None, None),
    ("woodpecker", "fragment_put", "Woodpecker fragment PUTs (If-None-Match: *)", "ops_per_s", None, None),
    ("woodpecker", "fence", "Woodpecker fences (PUT, refused PUT, HEAD)", "ops_per_s", None, None),
    ("woodpecker", "tail_get", "Woodpecker tail GETs (last 64 KiB)", "ops_per_s", None, None),
    ("woodpecker", "list", "Woodpecker listings (max-keys 100)", "ops_per_s", None, None),
]
UNITS = {"ops_per_s": "ops/s", "mb_per_s": "MB/s"}
FIO_UNITS = {"read_iops": "IOPS", "write_iops": "IOPS", "read_mb_per_s": "MB/s", "write_mb_per_s": "MB/s"}


def ratio(a, b):
    return f"{a / b:.2f}" if a is not None and b else "-"


def versus_best(strata, peers, best):
    """Strata ÷ the best of the peers' values ({name: value}), naming that
    peer when there is more than one."""
    known = {name: v for name, v in peers.items() if v is not None}
    if strata is None or not known:
        return "-"
    name = best(known, key=known.get)
    cell = ratio(strata, known[name])
    return f"{cell} ({name})" if len(peers) > 1 else cell


def num(x):
    if x is None:
        return "-"
    return f"{x:,.0f}" if x >= 100 else f"{x:.1f}"


def mib(x):
    return f"{x / 2**20:,.0f} MiB" if x is not None else "-"


def load(path):
    runs, fio, rss, foot, foot_live = {}, {}, {}, {}, {}
    servers = []  # in the order the run measured them

    def seen(server):
        if server not in servers:
            servers.append(server)

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
                seen(row["server"])
                rss[(row["server"], row["test"])] = row["vm_hwm_bytes"]
            elif kind == "footprint":
                seen(row["server"])
                foot[(row["server"], row["when"])] = row["bytes"]
                if row.get("live_bytes") is not None:
                    foot_live[(row["server"], row["when"])] = row["live_bytes"]
            elif "label" in row and "/" in row["label"]:
                server, test = row["label"].split("/", 1)
                seen(server)
                runs[(server, test, row["phase"])] = row
    return runs, fio, rss, foot, foot_live, servers


def main(path):
    runs, fio, rss, foot, foot_live, servers = load(path)
    peers = [s for s in servers if s != STRATA]
    name = lambda s: NAMES.get(s, s)

    head = ["test", "unit", "Strata", *peers, "Strata ÷ best peer", "p99 Strata ÷ best peer",
            "fio", "Strata ÷ fio",
            *(f"{name(s)} p50 / p99 ms" for s in [STRATA, *peers]),
            "errors " + " / ".join(name(s) for s in [STRATA, *peers])]
    rows = []
    for test, phase, title, metric, fio_case, fio_field in TESTS:
        got = {s: runs.get((s, test, phase)) for s in [STRATA, *peers]}
        if not any(got.values()):
            continue
        value = {s: r[metric] if r else None for s, r in got.items()}
        # A server that completed nothing has no latency to compare.
        p99 = {s: r["latency_ms_p99"] if r and r["ops"] else None for s, r in got.items()}
        fv = fio[fio_case][fio_field] if fio_case in fio else None
        fio_cell = f"{num(fv)} {FIO_UNITS[fio_field]}" if fv is not None else "-"
        lat = lambda r: f"{r['latency_ms_p50']:.1f} / {r['latency_ms_p99']:.1f}" if r else "-"
        errors = " / ".join(str(r["errors"]) if r else "-" for r in got.values())
        rows.append([title, UNITS[metric], *(num(v) for v in value.values()),
                     versus_best(value[STRATA], {p: value[p] for p in peers}, max),
                     versus_best(p99[STRATA], {p: p99[p] for p in peers}, min),
                     fio_cell, ratio(value[STRATA], fv),
                     *(lat(r) for r in got.values()), errors])
    if not fio:  # woodpecker.sh measures no disk
        keep = [i for i, h in enumerate(head) if h not in ("fio", "Strata ÷ fio")]
        head, rows = [head[i] for i in keep], [[r[i] for i in keep] for r in rows]
    print_table(head, rows)

    tests = []
    for (_, test) in rss:
        if test not in tests:
            tests.append(test)
    if tests:
        print()
        rrows = [[t, *(mib(rss.get((s, t))) for s in [STRATA, *peers]),
                  versus_best(rss.get((STRATA, t)), {p: rss.get((p, t)) for p in peers}, min)]
                 for t in tests]
        print_table(["peak RSS (VmHWM) after", "Strata", *peers, "Strata ÷ smallest peer"], rrows)

    grown = {}
    for s in [STRATA, *peers]:
        before, after = foot.get((s, "before-milvus")), foot.get((s, "after-milvus"))
        grown[s] = after - before if None not in (before, after) else None
    if any(foot.get((s, "after-milvus")) is not None for s in [STRATA, *peers]):
        print()
        total = {s: foot.get((s, "after-milvus")) for s in [STRATA, *peers]}
        # Strata's live records (dead ones compacted away); the others free
        # at once, so all they hold is live.
        settled = {}
        for s in [STRATA, *peers]:
            b = foot_live.get((s, "before-milvus"), foot.get((s, "before-milvus")))
            a = foot_live.get((s, "after-milvus"), foot.get((s, "after-milvus")))
            settled[s] = a - b if None not in (a, b) else None
        frows = [[name(s), mib(total[s]), mib(grown[s]), mib(settled[s])] for s in [STRATA, *peers]]
        frows.append(["Strata ÷ smallest peer",
                      versus_best(total[STRATA], {p: total[p] for p in peers}, min),
                      versus_best(grown[STRATA], {p: grown[p] for p in peers}, min),
                      versus_best(settled[STRATA], {p: settled[p] for p in peers}, min)])
        print_table(["on disk after the Milvus replay", "total (all tests)", "grown during the replay",
                     "grown, live data only"], frows)
        print("(Strata: allocated blocks of its data file, du -B1, and in the last column its live records"
              " (strata_device_live_bytes); the others: du -sB1 of their directories, which free at once)")


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
