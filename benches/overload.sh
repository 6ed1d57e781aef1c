#!/usr/bin/env bash
# Overload: 4 KiB GETs and PUTs (70/30) from more clients than the server
# can serve, each client a connection of its own, by the `overload` client
# (presigned URLs, so a request costs the load generator microseconds; a
# client answered 503 or refused a connection backs off as the AWS SDKs
# do). For each client count it prints the accepted requests' rate and
# p50/p99, the share answered 503 SlowDown, connections refused, and the
# server's peak RSS, and then each step's p99 against the p99 of the step
# where throughput peaked.
#   benches/overload.sh [--duration-s S] [--clients "64 256 1024 4096"] [--dir DIR]
#                       [--server-cpus LIST --client-cpus LIST] [-- SERVE ARGS]
# --server-cpus/--client-cpus pin each side to its own CPUs (taskset), so the
# load generator's scheduling does not count as the server's latency.
# Release build, the server's default limits; a few minutes. Not part of
# ./test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
duration_s=15
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
        -h|--help) sed -n 2,14p "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done
cargo build --release -p strata -p strata-benches
ulimit -n "$(ulimit -Hn)"
mkdir -p "$dir" target/bench
out=$root/target/bench/overload-$(date +%Y%m%d-%H%M%S).jsonl
export AWS_ACCESS_KEY_ID=overload AWS_SECRET_ACCESS_KEY=overload-secret-$RANDOM$RANDOM
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
server=
stop_server() {
    [[ -n $server ]] && { kill "$server" 2>/dev/null; wait "$server" 2>/dev/null || true; }
    server=
    rm -f "$dir/strata.img"
}
trap stop_server EXIT

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

# The server's CPU time so far (user + system), in clock ticks.
server_cpu_ticks() {
    awk '{print $14 + $15}' /proc/$server/stat
}

for n in $clients; do
    # A fresh server per step: each starts from the same state.
    stop_server
    STRATA_ACCESS_KEY=$AWS_ACCESS_KEY_ID STRATA_SECRET_KEY=$AWS_SECRET_ACCESS_KEY STRATA_LOG=warn \
        "${server_pin[@]}" target/release/strata serve --address 127.0.0.1:$port --data "$dir/strata.img" \
        --size-bytes $((32 << 30)) --console-address "" "$@" >"$dir/strata.log" 2>&1 &
    server=$!
    until curl -sf "http://127.0.0.1:$port/minio/health/ready" >/dev/null; do sleep 0.1; done
    cpu_before=$(server_cpu_ticks)
    with_peak_rss "${client_pin[@]}" target/release/overload --endpoint "http://127.0.0.1:$port" \
        --clients "$n" --duration-s "$duration_s" --label "clients-$n" >"$dir/run.json" 2>"$dir/run.err"
    cpu_ticks=$(($(server_cpu_ticks) - cpu_before))
    curl -sf "http://127.0.0.1:$port/metrics" >"$dir/metrics.txt"
    python3 - "$(cat "$dir/peak_rss_kib")" "$dir/run.json" "$dir/metrics.txt" "$cpu_ticks" "$(getconf CLK_TCK)" >>"$out" <<'EOF'
import json, re, sys
peak_kib, run, metrics = int(sys.argv[1]), sys.argv[2], open(sys.argv[3]).read()
cpu_s = int(sys.argv[4]) / int(sys.argv[5])
r = json.loads(open(run).read().strip().splitlines()[-1])
def counts(name):
    return {m[0]: float(m[1]) for m in re.findall(rf'^{name}\{{\w+="(\w+)"\}} (\S+)$', metrics, re.M)}
r["server_shed"] = counts("strata_requests_shed_total")
r["server_refused"] = counts("strata_connections_refused_total")
r["peak_rss_mib"] = peak_kib / 1024
r["server_cpu_s"] = cpu_s
evicted = re.search(r"^strata_connections_evicted_total (\S+)$", metrics, re.M)
r["server_evicted"] = float(evicted.group(1)) if evicted else 0.0
print(json.dumps(r))
EOF
    tail -1 "$out"
done
python3 - "$out" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
peak = max(rows, key=lambda r: r["accepted_per_s"])
print(f"\n{'clients':>8} {'accepted/s':>11} {'p50 ms':>8} {'p99 ms':>8} {'p99/peak':>9} {'shed':>7} "
      f"{'refused conns':>14} {'peak RSS':>9}")
for r in rows:
    refused = sum(r["server_refused"].values())
    print(f"{r['clients']:>8} {r['accepted_per_s']:>11.0f} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} "
          f"{r['p99_ms'] / peak['p99_ms']:>9.2f} {100 * r['shed_share']:>6.1f}% {refused:>14.0f} "
          f"{r['peak_rss_mib']:>7.0f} MiB")
print(f"(p99/peak: against the p99 at {peak['clients']} clients, where throughput peaked)")
EOF
