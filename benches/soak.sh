#!/usr/bin/env bash
# Soak: mixed load on one server for a long time, with compaction running,
# printing every minute the server's RSS, its data file's allocated size,
# and the p99 of each load's requests in that minute.
#   benches/soak.sh [--minutes N] [--dir DIR] [-- SERVE ARGS]
# Each minute runs, at once: 4 KiB GETs and PUTs of new keys (s3load mixed,
# 32 clients), 64 MiB multipart PUTs that overwrite the same keys (dead
# bytes for compaction), listings, and a small Milvus replay (inserts,
# ranged reads, compaction's batch DELETEs). Release build; default 20
# minutes. Not part of ./test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
minutes=20
dir=/tmp/soak
while [[ $# -gt 0 ]]; do
    case $1 in
        --minutes) minutes=$2; shift ;;
        --dir) dir=$2; shift ;;
        --) shift; break ;;
        -h|--help) sed -n 2,10p "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done
cargo build --release -p strata -p strata-benches
mkdir -p "$dir" target/bench
rm -f "$dir/strata.img"
out=$root/target/bench/soak-$(date +%Y%m%d-%H%M%S).jsonl
export AWS_ACCESS_KEY_ID=soak AWS_SECRET_ACCESS_KEY=soak-secret-$RANDOM$RANDOM
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
STRATA_ACCESS_KEY=$AWS_ACCESS_KEY_ID STRATA_SECRET_KEY=$AWS_SECRET_ACCESS_KEY STRATA_LOG=warn \
    target/release/strata serve --address 127.0.0.1:$port --data "$dir/strata.img" \
    --size-bytes $((16 << 30)) --segment-size-bytes $((64 << 20)) --compaction-interval-ms 2000 \
    "$@" >"$dir/strata.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -f "$dir/strata.img"' EXIT
until curl -sf "http://127.0.0.1:$port/minio/health/ready" >/dev/null; do sleep 0.1; done
load=(target/release/s3load --endpoint "http://127.0.0.1:$port" --bucket soak --max-attempts 1 --duration-s 55)

printf '%6s %9s %10s %11s %11s %11s %11s %7s\n' minute "RSS MiB" "file MiB" "mixed p99" "mpu p99" "list p99" "milvus p99" errors
for ((m = 1; m <= minutes; m++)); do
    "${load[@]}" --mode mixed --size 4096 --concurrency 32 --seed "$m" --label mixed >"$dir/mixed.json" 2>"$dir/mixed.err" &
    a=$!
    "${load[@]}" --mode put --size $((64 << 20)) --concurrency 1 --prefill 0 --seed 1 --label mpu >"$dir/mpu.json" 2>"$dir/mpu.err" &
    b=$!
    "${load[@]}" --mode list --concurrency 2 --prefill 2000 --label list >"$dir/list.json" 2>"$dir/list.err" &
    c=$!
    target/release/s3load --endpoint "http://127.0.0.1:$port" --bucket soak-milvus --max-attempts 1 \
        --mode milvus --milvus-segments 2 --milvus-buffers 2 --label milvus >"$dir/milvus.json" 2>"$dir/milvus.err" &
    d=$!
    wait $a $b $c $d || true
    rss=$(awk '/VmRSS/ {print int($2 / 1024)}' /proc/$server/status)
    file=$(( $(stat -c %b "$dir/strata.img") * $(stat -c %B "$dir/strata.img") / 1048576 ))
    python3 - "$m" "$rss" "$file" "$dir" >>"$out" <<'EOF'
import json, sys
m, rss, file, d = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
def rows(name):
    return [json.loads(l) for l in open(f"{d}/{name}.json") if l.startswith("{")]
p99 = {n: max((r["latency_ms_p99"] for r in rows(n)), default=0) for n in ("mixed", "mpu", "list", "milvus")}
errors = sum(r["errors"] for n in ("mixed", "mpu", "list", "milvus") for r in rows(n))
print(json.dumps({"minute": m, "rss_mib": rss, "file_mib": file, "p99_ms": p99, "errors": errors}))
EOF
    python3 - "$out" <<'EOF'
import json, sys
r = json.loads(open(sys.argv[1]).readlines()[-1])
p = r["p99_ms"]
print(f"{r['minute']:>6} {r['rss_mib']:>9} {r['file_mib']:>10} {p['mixed']:>11.1f} {p['mpu']:>11.1f} "
      f"{p['list']:>11.1f} {p['milvus']:>11.1f} {r['errors']:>7}")
EOF
done
echo "JSON lines in $out"
