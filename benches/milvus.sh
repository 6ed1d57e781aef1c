#!/usr/bin/env bash
# A real Milvus (PyPI's milvus 2.3.5 standalone) on Strata and on each peer,
# one server after the other, each with a fresh Milvus: create a collection
# (int64 key, varchar, 768-dim float vector), insert, flush, build an HNSW
# index, load, search, delete 1% and compact, drop. Times each phase
# (benches/milvus_bench.py) and prints the servers side by side.
#   benches/milvus.sh [--rows N] [--batch N] [--queries N] [--peers "s3s-fs seaweedfs"]
#                     [--dir DIR] [--drop-caches] [--no-build]
# Defaults: 100,000 rows in batches of 5,000, 200 queries (--rows 5000 takes
# about 35 s a server here, most of it Milvus's start). --drop-caches empties the page cache before the load
# phase (root), so file-backed peers read their disk as Strata does. JSON
# lines go to target/bench/milvus-*.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
source benches/servers.sh

bench_dir=/tmp/milvus-bench
bucket=milvus-bench
no_build=0
peers=(s3s-fs seaweedfs)
driver_args=()
while [[ $# -gt 0 ]]; do
    case $1 in
        --rows | --batch | --queries) driver_args+=("$1" "$2"); shift ;;
        --drop-caches) driver_args+=("$1") ;;
        --peers) read -r -a peers <<<"$2"; shift ;;
        --dir) bench_dir=$2; shift ;;
        --no-build) no_build=1 ;;
        -h|--help) sed -n 2,12p "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done
servers=(strata "${peers[@]}")

build_release
for server in "${servers[@]}"; do install_server "$server"; done
venv=$root/.venv-milvus
tests/interop/setup_venv.sh tests/milvus/requirements.txt "$venv" >&2
mkdir -p "$bench_dir" target/bench
bench_dir=$(cd "$bench_dir" && pwd)
out=$root/target/bench/milvus-$(date +%Y%m%d-%H%M%S).jsonl
: >"$out"
export AWS_ACCESS_KEY_ID=milvusbench
export AWS_SECRET_ACCESS_KEY=milvus-bench-secret-$RANDOM$RANDOM
cleanup() {
    stop_servers
    for server in "${servers[@]}"; do remove_server_data "$server"; done
}
trap cleanup EXIT

# One server at a time: Milvus and the server share the two cores.
failed=()
for server in "${servers[@]}"; do
    remove_server_data "$server"
    start_server "$server"
    warm_bucket "$server" "$bucket"
    if ! "$venv/bin/python" benches/milvus_bench.py run --server "$server" \
        --endpoint "${server_endpoint[$server]}" --bucket "$bucket" --workdir "$bench_dir" --out "$out" "${driver_args[@]}"; then
        failed+=("$server")
    fi
    # Milvus collects a dropped collection's files only an hour later, so
    # this is what the whole run wrote.
    echo "{\"kind\":\"footprint\",\"server\":\"$server\",\"when\":\"after-milvus\",\"bytes\":$(footprint_bytes "$server")}" >>"$out"
    echo "{\"kind\":\"rss\",\"server\":\"$server\",\"test\":\"milvus\",\"vm_hwm_bytes\":$(peak_rss_bytes "$server")}" >>"$out"
    stop_server "$server"
    remove_server_data "$server"
done

echo
"$venv/bin/python" benches/milvus_bench.py report "$out"
echo "results: $out" >&2
if ((${#failed[@]})); then
    echo "failed on: ${failed[*]}" >&2
    exit 1
fi
