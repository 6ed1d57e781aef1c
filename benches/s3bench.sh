#!/usr/bin/env bash
# Strata beside peer S3 servers on the same disk (s3s-fs: one file per
# object; SeaweedFS: objects packed in volume files behind a filer), with
# fio's limits of that disk, through the same client (s3load):
#   benches/s3bench.sh [--quick] [--loop] [--sse] [--peers "s3s-fs seaweedfs"]
#                      [--dir DIR] [--duration-s S] [--keep] [--no-build]
# --quick: 3 s per timed test and a smaller Milvus replay. --peers: the
# servers beside Strata, in order. --sse: the only peer is a second Strata
# that encrypts every object (SSE-S3, --encrypt-new-objects), to price
# encryption. --loop: Strata on a loop device (direct I/O, 4096-byte sectors;
# needs root), and fio on that device, instead of a data file. --no-build:
# the release binaries as they are. The work dir (default /tmp/s3bench, or
# S3BENCH_DIR) holds every server's data and fio's file; its data is removed
# at the end unless --keep. JSON lines go to target/bench/s3bench-*.jsonl,
# the table to stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
source benches/servers.sh

bench_dir=${S3BENCH_DIR:-/tmp/s3bench}
duration_s=15
quick=0
keep=0
loop=0
no_build=0
peers=(s3s-fs seaweedfs)
while [[ $# -gt 0 ]]; do
    case $1 in
        --quick) quick=1; duration_s=3 ;;
        --dir) bench_dir=$2; shift ;;
        --duration-s) duration_s=$2; shift ;;
        --keep) keep=1 ;;
        --loop) loop=1 ;;
        --sse) peers=(strata-sse) ;;
        --peers) read -r -a peers <<<"$2"; shift ;;
        --no-build) no_build=1 ;;
        -h|--help) sed -n 2,15p "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done
if ((loop)) && [[ " ${peers[*]} " == *" strata-sse "* ]]; then
    echo "--sse compares two Strata data files; run it without --loop" >&2
    exit 2
fi
if ((quick)); then
    milvus_args=(--milvus-segments 2 --milvus-buffers 4)
    fio_size=1G
else
    milvus_args=(--milvus-segments 4 --milvus-buffers 8)
    fio_size=4G
fi
servers=(strata "${peers[@]}")

# 1. build, and the peers
build_release
s3load=$root/target/release/s3load
for server in "${servers[@]}"; do install_server "$server"; done
command -v fio >/dev/null || { echo "fio is needed" >&2; exit 1; }

# 2. every server's data on the same disk
mkdir -p "$bench_dir" target/bench
bench_dir=$(cd "$bench_dir" && pwd)
out=$root/target/bench/s3bench-$(date +%Y%m%d-%H%M%S).jsonl
: >"$out"
for server in "${servers[@]}"; do remove_server_data "$server"; done
rm -f "$bench_dir/fio.img"
export AWS_ACCESS_KEY_ID=s3bench
export AWS_SECRET_ACCESS_KEY=s3bench-secret-$RANDOM$RANDOM

loop_dev=
cleanup() {
    stop_servers
    if [[ -n $loop_dev ]]; then losetup -d "$loop_dev"; fi
    if ((keep == 0)); then
        for server in "${servers[@]}"; do remove_server_data "$server"; done
        rm -f "$bench_dir/fio.img"
    fi
}
trap cleanup EXIT
if ((loop)); then
    # The device's backing file is sparse; its allocated blocks are the
    # footprint, as with the data file.
    truncate -s 64G "$bench_dir/strata.img"
    loop_dev=$(losetup --find --show --direct-io=on --sector-size 4096 "$bench_dir/strata.img")
    strata_data=$loop_dev
    fio_target=$loop_dev
else
    fio_target=$bench_dir/fio.img
fi

# 3. the disk's limits (before the servers start, so nothing else runs)
fio_json() { # case, fio args...
    local name=$1
    shift
    fio --name="$name" --filename="$fio_target" --size="$fio_size" --direct=1 \
        --runtime="$duration_s" --time_based --output-format=json "$@" |
        python3 -c 'import json,sys; j=json.load(sys.stdin)["jobs"][0]; r=j["read"]; w=j["write"]
print(json.dumps({"kind":"fio","case":sys.argv[1],"read_mb_per_s":round(r["bw_bytes"]/1e6,1),"write_mb_per_s":round(w["bw_bytes"]/1e6,1),"read_iops":round(r["iops"]),"write_iops":round(w["iops"])}))' "$name" |
        tee -a "$out"
}
# The file is written end to end first, so the reads below read data.
fio_json seq_write --rw=write --bs=1M --ioengine=io_uring --iodepth=8
fio_json seq_read --rw=read --bs=1M --ioengine=io_uring --iodepth=8
fio_json randread_4k --rw=randread --bs=4k --ioengine=io_uring --iodepth=32
rm -f "$bench_dir/fio.img"
if ((loop)); then
    target/release/strata format "$strata_data" >&2
fi

# 4. the servers, all up for the whole suite
for server in "${servers[@]}"; do
    start_server "$server"
    warm_bucket "$server" s3bench
done

# 5. the suite, each test on one server after the other
rss() { # server, test
    echo "{\"kind\":\"rss\",\"server\":\"$1\",\"test\":\"$2\",\"vm_hwm_bytes\":$(peak_rss_bytes "$1")}" >>"$out"
}
footprint() { # server, when
    local live=null
    # The bytes of Strata's live records: its data file with every dead
    # record compacted away. The replay deletes and overwrites objects; the
    # other servers free that space at once, Strata's background compaction
    # only once 15% of the used segments' bytes are dead.
    [[ $1 == strata* ]] && live=$(curl -sf "${server_endpoint[$1]}/metrics" |
        awk '/^strata_device_live_bytes / {print $2}')
    echo "{\"kind\":\"footprint\",\"server\":\"$1\",\"when\":\"$2\",\"bytes\":$(footprint_bytes "$1"),\"live_bytes\":${live:-null}}" |
        tee -a "$out"
}
run() { # test, s3load args...
    local test=$1 server
    shift
    for server in "${servers[@]}"; do
        [[ $test == milvus ]] && footprint "$server" before-milvus
        "$s3load" --endpoint "${server_endpoint[$server]}" --label "$server/$test" --bucket s3bench "$@" |
            tee -a "$out"
        rss "$server" "$test"
        [[ $test == milvus ]] && footprint "$server" after-milvus
        # Let each server settle (flushes, the page cache's writeback)
        # before the next one runs.
        sync
    done
}
t=(--duration-s "$duration_s")
run get-4k --mode get --size 4096 --concurrency 64 "${t[@]}" --seed 11
run put-4k --mode put --size 4096 --concurrency 64 "${t[@]}" --seed 12
run get-16m-ranges --mode get --size $((64 << 20)) --prefill 16 --range random \
    --range-size $((16 << 20)) --concurrency 8 --drop-caches "${t[@]}" --seed 13
run put-256m --mode put --size $((256 << 20)) --concurrency 4 "${t[@]}" --seed 14
run put-256m-streaming --mode put --size $((256 << 20)) --concurrency 4 "${t[@]}" --seed 16 \
    --signing minio-streaming
run milvus --mode milvus --concurrency 8 --drop-caches --seed 15 "${milvus_args[@]}"

# 6. the table
python3 benches/s3bench_report.py "$out"
echo "results: $out" >&2
