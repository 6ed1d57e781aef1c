"""Turns the JSON lines of benches/engine.sh into a table with ratios to fio."""
import json
import sys

rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
for device in sorted({r["device"] for r in rows}):
    fio = {r["case"]: r for r in rows if r["device"] == device and r["case"].startswith("fio_")}
    seq_w = fio.get("fio_seq_write", {}).get("write_mb_per_s", 0)
    seq_r = fio.get("fio_seq_read", {}).get("read_mb_per_s", 0)
    fsync_iops = fio.get("fio_fsync_4k", {}).get("write_iops", 0)
    print(f"\n## {device}: fio seq write {seq_w:.0f} MB/s, seq read {seq_r:.0f} MB/s, 4 KiB write+fdatasync {fsync_iops:.0f} IOPS")
    print(f"{'case':<28}{'size':>10}{'clients':>8}{'ops/s':>12}{'MB/s':>10}  ratio")
    for r in rows:
        if r["device"] != device or r["case"].startswith("fio_"):
            continue
        if r["case"] in ("put", "get"):
            if r["case"] == "put" and r["size_bytes"] == 4096:
                ratio = f"{r['ops_per_s'] / fsync_iops:.1f}x fio fsync IOPS" if fsync_iops else ""
            elif r["case"] == "put":
                ratio = f"{r['mb_per_s'] / seq_w:.2f} of fio seq write" if seq_w else ""
            else:
                ratio = f"{r['mb_per_s'] / seq_r:.2f} of fio seq read" if seq_r else ""
            print(f"{r['case']:<28}{r['size_bytes']:>10}{r['clients']:>8}{r['ops_per_s']:>12.0f}{r['mb_per_s']:>10.0f}  {ratio}")
        elif r["case"] == "recovery_scan":
            ratio = f"{r['mb_per_s'] / seq_r:.2f} of fio seq read" if seq_r else ""
            print(f"{'recovery scan':<28}{r['bytes']:>10}{'':>8}{'':>12}{r['mb_per_s']:>10.0f}  {ratio}")
        else:
            print("  " + json.dumps(r))
