#!/usr/bin/env bash
# Milvus 2.6's write-ahead log (Woodpecker) on Strata: s3load's woodpecker
# mode with 64 logs, each appending a fragment of up to 2 MiB every 200 ms
# with If-None-Match: *, plus fences, tail reads and listings. Prints each
# phase's rate and p50/p99. Release build; about a minute.
#   benches/woodpecker.sh [--logs N] [--max-bytes B] [--duration-s S] [--dir DIR] [-- SERVE ARGS]
set -euo pipefail
cd "$(dirname "$0")/.."
logs=64
max_bytes=$((2 << 20))
duration_s=30
dir=/tmp/woodpecker-bench
while [[ $# -gt 0 ]]; do
    case $1 in
        --logs) logs=$2; shift ;;
        --max-bytes) max_bytes=$2; shift ;;
        --duration-s) duration_s=$2; shift ;;
        --dir) dir=$2; shift ;;
        --) shift; break ;;
        -h|--help) sed -n 2,6p "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done
cargo build --release -p strata -p strata-benches
mkdir -p "$dir"
rm -f "$dir/strata.img"
export AWS_ACCESS_KEY_ID=woodpecker AWS_SECRET_ACCESS_KEY=woodpecker-secret-$RANDOM$RANDOM
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
STRATA_ACCESS_KEY=$AWS_ACCESS_KEY_ID STRATA_SECRET_KEY=$AWS_SECRET_ACCESS_KEY STRATA_LOG=warn \
    target/release/strata serve --address 127.0.0.1:$port --data "$dir/strata.img" \
    --size-bytes $((64 << 30)) "$@" >"$dir/strata.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -f "$dir/strata.img"' EXIT
until curl -sf "http://127.0.0.1:$port/minio/health/ready" >/dev/null; do sleep 0.1; done
target/release/s3load --endpoint "http://127.0.0.1:$port" --bucket woodpecker --mode woodpecker \
    --concurrency "$logs" --size "$max_bytes" --duration-s "$duration_s" --max-attempts 1
