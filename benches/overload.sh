#!/usr/bin/env bash
# Overload: 4 KiB GETs and PUTs (s3load's mixed mode, 70/30) from more
# clients than the server can serve, each client a connection of its own,
# no retries. For each client count it prints the accepted requests' rate
# and p50/p99, the share answered 503 SlowDown, and the server's peak RSS.
#   benches/overload.sh [--duration-s S] [--clients "64 256 1024 4096"] [--dir DIR]
#                       [--server-cpus LIST --client-cpus LIST] [-- SERVE ARGS]
# --server-cpus/--client-cpus pin each side to its own CPUs (taskset), so the
# load generator's scheduling does not count as the server's latency.
# Release build, default server settings (--max-requests 256); a few
# minutes. Not part of ./test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
duration_s=20
clients="64 256 1024 4096"
dir=/tmp/overload
server_pin=()
client_pin=()
while [[ $# -gt 0 ]]; do
    case $1 in
        --duration-s) duration_s=$2; shift ;;
        --clients) clients=$2; shift ;;
        --dir) dir=$2; shift ;;
        --server-cpus) server_pin=(taskset -c "$2"); shift ;;
        --client-cpus) client_pin=(taskset -c "$2"); shift ;;
        --) shift; break ;;
        -h|--help) sed -n 2,11p "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done
cargo build --release -p strata -p strata-benches
ulimit -n "$(ulimit -Hn)"
mkdir -p "$dir" target/bench
rm -f "$dir/strata.img"
out=$root/target/bench/overload-$(date +%Y%m%d-%H%M%S).jsonl
export AWS_ACCESS_KEY_ID=overload AWS_SECRET_ACCESS_KEY=overload-secret-$RANDOM$RANDOM
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
STRATA_ACCESS_KEY=$AWS_ACCESS_KEY_ID STRATA_SECRET_KEY=$AWS_SECRET_ACCESS_KEY STRATA_LOG=warn \
    "${server_pin[@]}" target/release/strata serve --address 127.0.0.1:$port --data "$dir/strata.img" \
    --size-bytes $((32 << 30)) --max-connections 8192 "$@" >"$dir/strata.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -f "$dir/strata.img"' EXIT
until curl -sf "http://127.0.0.1:$port/minio/health/ready" >/dev/null; do sleep 0.1; done

# Peak RSS of the server while a command runs (VmRSS sampled every 100 ms).
with_peak_rss() {
    local peak=0 rss
    "$@" &
    local pid=$!
    while kill -0 $pid 2>/dev/null; do
        rss=$(awk '/VmRSS/ {print $2}' /proc/$server/status)
        ((rss > peak)) && peak=$rss
        sleep 0.1
    done
    wait $pid || true
    echo "$peak" >"$dir/peak_rss_kib"
}

for n in $clients; do
    with_peak_rss "${client_pin[@]}" target/release/s3load --endpoint "http://127.0.0.1:$port" --bucket overload \
        --mode mixed --size 4096 --prefill 2000 --concurrency "$n" --duration-s "$duration_s" \
        --max-attempts 1 --label "clients-$n" >"$dir/run.json" 2>"$dir/run.err"
    python3 - "$n" "$(cat "$dir/peak_rss_kib")" "$dir/run.json" "$dir/run.err" >>"$out" <<'EOF'
import json, re, sys
n, peak_kib, run, err = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
r = json.loads([l for l in open(run) if l.startswith("{")][-1])
errors = open(err).read()
shed = sum(int(m) for m in re.findall(r"^\s*(\d+)\s+\S+ SlowDown\s*$", errors, re.M))
total = r["ops"] + r["errors"]
print(json.dumps({"clients": n, "accepted_ops_per_s": r["ops_per_s"], "p50_ms": r["latency_ms_p50"],
                  "p99_ms": r["latency_ms_p99"], "errors": r["errors"], "shed": shed,
                  "shed_share": shed / total if total else 0, "peak_rss_mib": peak_kib / 1024}))
EOF
    tail -1 "$out"
done
python3 - "$out" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print(f"\n{'clients':>8} {'accepted/s':>11} {'p50 ms':>8} {'p99 ms':>8} {'shed':>7} {'peak RSS':>9}")
for r in rows:
    print(f"{r['clients']:>8} {r['accepted_ops_per_s']:>11.0f} {r['p50_ms'] or 0:>8.2f} {r['p99_ms'] or 0:>8.2f} "
          f"{100 * r['shed_share']:>6.1f}% {r['peak_rss_mib']:>7.0f} MiB")
EOF
