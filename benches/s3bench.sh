#!/usr/bin/env bash
# Strata beside a peer S3 server (s3s-fs: one file per object) on the same
# disk, with fio's limits of that disk, through the same client (s3load):
#   benches/s3bench.sh [--quick] [--loop] [--sse] [--dir DIR] [--duration-s S] [--keep]
# --quick: 3 s per timed test and a smaller Milvus replay. --sse: the peer is
# a second Strata that encrypts every object (SSE-S3, --encrypt-new-objects)
# instead of s3s-fs, to price encryption. --loop: Strata on
# a loop device (direct I/O, 4096-byte sectors; needs root), and fio on that
# device, instead of a data file. The work dir
# (default /tmp/s3bench, or S3BENCH_DIR) holds both servers' data and fio's
# file; its data is removed at the end unless --keep. JSON lines go to
# target/bench/s3bench-*.jsonl, the table to stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

dir=${S3BENCH_DIR:-/tmp/s3bench}
duration_s=15
quick=0
keep=0
loop=0
peer=s3s-fs
while [[ $# -gt 0 ]]; do
    case $1 in
        --quick) quick=1; duration_s=3 ;;
        --dir) dir=$2; shift ;;
        --duration-s) duration_s=$2; shift ;;
        --keep) keep=1 ;;
        --loop) loop=1 ;;
        --sse) peer=strata-sse ;;
        -h|--help) sed -n 2,13p "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done
if ((loop)) && [[ $peer == strata-sse ]]; then
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

# 1. build
cargo build --release -p strata -p strata-benches
s3load=$root/target/release/s3load

# 2. the peer
export PATH="$HOME/.cargo/bin:$PATH"
if [[ $peer == s3s-fs ]] && ! s3s-fs --help >/dev/null 2>&1; then
    cargo install s3s-fs@0.14.1 --features binary --locked
fi
command -v fio >/dev/null || { echo "fio is needed" >&2; exit 1; }

# 3. both servers, data on the same disk
mkdir -p "$dir" target/bench
dir=$(cd "$dir" && pwd)
out=$root/target/bench/s3bench-$(date +%Y%m%d-%H%M%S).jsonl
: >"$out"
rm -rf "$dir/strata.img" "$dir/strata-sse.img" "$dir/s3s-fs" "$dir/fio.img"
mkdir -p "$dir/s3s-fs"
export AWS_ACCESS_KEY_ID=s3bench
export AWS_SECRET_ACCESS_KEY=s3bench-secret-$RANDOM$RANDOM
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
strata_port=$(free_port)
peer_port=$(free_port)
declare -A pid endpoint

loop_dev=
cleanup() {
    for p in "${pid[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pid[@]}"; do wait "$p" 2>/dev/null || true; done
    if [[ -n $loop_dev ]]; then losetup -d "$loop_dev"; fi
    if ((keep == 0)); then rm -rf "$dir/strata.img" "$dir/strata-sse.img" "$dir/s3s-fs" "$dir/fio.img"; fi
}
trap cleanup EXIT
if ((loop)); then
    # The device's backing file is sparse; its allocated blocks are the
    # footprint, as with the data file.
    truncate -s 64G "$dir/strata.img"
    loop_dev=$(losetup --find --show --direct-io=on --sector-size 4096 "$dir/strata.img")
    strata_data=$loop_dev
    fio_target=$loop_dev
else
    strata_data=$dir/strata.img
    fio_target=$dir/fio.img
fi

# 4. the disk's limits (before the servers start, so nothing else runs)
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
rm -f "$dir/fio.img"
if ((loop)); then
    target/release/strata format "$strata_data" >&2
fi

# 5. the servers
STRATA_ACCESS_KEY=$AWS_ACCESS_KEY_ID STRATA_SECRET_KEY=$AWS_SECRET_ACCESS_KEY \
    target/release/strata serve --address "127.0.0.1:$strata_port" --data "$strata_data" \
    >"$dir/strata.log" 2>&1 &
pid[strata]=$!
endpoint[strata]=http://127.0.0.1:$strata_port
if [[ $peer == strata-sse ]]; then
    # A fresh master key in MinIO's format, from the environment.
    MINIO_KMS_SECRET_KEY=s3bench-key:$(head -c 32 /dev/urandom | base64) \
        STRATA_ACCESS_KEY=$AWS_ACCESS_KEY_ID STRATA_SECRET_KEY=$AWS_SECRET_ACCESS_KEY \
        target/release/strata serve --address "127.0.0.1:$peer_port" \
        --data "$dir/strata-sse.img" --encrypt-new-objects true >"$dir/strata-sse.log" 2>&1 &
    pid[$peer]=$!
    peer_health=/health
else
    s3s-fs --host 127.0.0.1 --port "$peer_port" --access-key "$AWS_ACCESS_KEY_ID" \
        --secret-key "$AWS_SECRET_ACCESS_KEY" "$dir/s3s-fs" >"$dir/s3s-fs.log" 2>&1 &
    pid[$peer]=$!
    peer_health=/
fi
endpoint[$peer]=http://127.0.0.1:$peer_port

wait_up() { # name, url: any HTTP answer will do
    for _ in $(seq 1 300); do
        code=$(curl -s -o /dev/null -w '%{http_code}' "$2" || true)
        [[ $code != 000 ]] && return 0
        kill -0 "${pid[$1]}" 2>/dev/null || { echo "$1 exited; see $dir/$1.log" >&2; exit 1; }
        sleep 0.1
    done
    echo "$1 did not answer at $2" >&2
    exit 1
}
wait_up strata "${endpoint[strata]}/health"
wait_up "$peer" "${endpoint[$peer]}$peer_health"
echo "strata on ${endpoint[strata]} (pid ${pid[strata]}), $peer on ${endpoint[$peer]} (pid ${pid[$peer]}), data in $dir" >&2

# 6. the suite, each test on one server then the other
rss() { # server, test: peak resident set so far
    local kib
    kib=$(awk '/^VmHWM:/ {print $2}' "/proc/${pid[$1]}/status")
    echo "{\"kind\":\"rss\",\"server\":\"$1\",\"test\":\"$2\",\"vm_hwm_bytes\":$((kib * 1024))}" >>"$out"
}
footprint() { # server, when
    local bytes
    if [[ $1 == strata* ]]; then
        bytes=$(du -B1 "$dir/$1.img" | cut -f1)
    else
        bytes=$(du -sB1 "$dir/s3s-fs" | cut -f1)
    fi
    echo "{\"kind\":\"footprint\",\"server\":\"$1\",\"when\":\"$2\",\"bytes\":$bytes}" | tee -a "$out"
}
run() { # test, s3load args...
    local test=$1
    shift
    for server in strata "$peer"; do
        [[ $test == milvus ]] && footprint "$server" before-milvus
        "$s3load" --endpoint "${endpoint[$server]}" --label "$server/$test" --bucket s3bench "$@" |
            tee -a "$out"
        rss "$server" "$test"
        [[ $test == milvus ]] && footprint "$server" after-milvus
        # Let each server settle (flushes, the page cache's writeback)
        # before the other one runs.
        sync
    done
}
t=(--duration-s "$duration_s")
run get-4k --mode get --size 4096 --concurrency 64 "${t[@]}" --seed 11
run put-4k --mode put --size 4096 --concurrency 64 "${t[@]}" --seed 12
run get-16m-ranges --mode get --size $((64 << 20)) --prefill 16 --range random \
    --range-size $((16 << 20)) --concurrency 8 --drop-caches "${t[@]}" --seed 13
run put-256m --mode put --size $((256 << 20)) --concurrency 4 "${t[@]}" --seed 14
run milvus --mode milvus --concurrency 8 --drop-caches --seed 15 "${milvus_args[@]}"

# 7. the table
python3 benches/s3bench_report.py "$out"
echo "results: $out" >&2
