#!/usr/bin/env bash
# Milvus 2.6's write-ahead log (Woodpecker) on Strata and its peers, one
# server after the other: s3load's woodpecker mode with 64 logs, each
# appending a fragment of up to 2 MiB every 200 ms with If-None-Match: *,
# plus fences, tail reads and listings, with no retries. Prints each
# server's phases as they finish (rate, p50/p99), then the table side by
# side. Release build; about a minute per server.
#   benches/woodpecker.sh [--logs N] [--max-bytes B] [--duration-s S] [--dir DIR]
#                         [--peers "s3s-fs seaweedfs"] [--no-build] [-- STRATA SERVE ARGS]
# JSON lines go to target/bench/woodpecker-*.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
source benches/servers.sh

logs=64
max_bytes=$((2 << 20))
duration_s=30
bench_dir=/tmp/woodpecker-bench
no_build=0
peers=(s3s-fs seaweedfs)
while [[ $# -gt 0 ]]; do
    case $1 in
        --logs) logs=$2; shift ;;
        --max-bytes) max_bytes=$2; shift ;;
        --duration-s) duration_s=$2; shift ;;
        --dir) bench_dir=$2; shift ;;
        --peers) read -r -a peers <<<"$2"; shift ;;
        --no-build) no_build=1 ;;
        --) shift; break ;;
        -h|--help) sed -n 2,10p "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done
strata_args=(--size-bytes $((64 << 30)) "$@")
servers=(strata "${peers[@]}")

build_release
for server in "${servers[@]}"; do install_server "$server"; done
mkdir -p "$bench_dir" target/bench
bench_dir=$(cd "$bench_dir" && pwd)
out=$root/target/bench/woodpecker-$(date +%Y%m%d-%H%M%S).jsonl
: >"$out"
export AWS_ACCESS_KEY_ID=woodpecker AWS_SECRET_ACCESS_KEY=woodpecker-secret-$RANDOM$RANDOM
export STRATA_LOG=warn
cleanup() {
    stop_servers
    for server in "${servers[@]}"; do remove_server_data "$server"; done
}
trap cleanup EXIT

# One server at a time, so that the others' background work does not count.
for server in "${servers[@]}"; do
    remove_server_data "$server"
    start_server "$server"
    warm_bucket "$server" woodpecker
    target/release/s3load --endpoint "${server_endpoint[$server]}" --label "$server/woodpecker" \
        --bucket woodpecker --mode woodpecker --concurrency "$logs" --size "$max_bytes" \
        --duration-s "$duration_s" --max-attempts 1 | tee -a "$out" >/dev/null
    echo "{\"kind\":\"rss\",\"server\":\"$server\",\"test\":\"woodpecker\",\"vm_hwm_bytes\":$(peak_rss_bytes "$server")}" >>"$out"
    stop_server "$server"
    remove_server_data "$server"
done

python3 benches/s3bench_report.py "$out"
echo "results: $out" >&2
