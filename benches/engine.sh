#!/usr/bin/env bash
# Engine benchmark with the device's own limit beside it, in one run:
#   benches/engine.sh [DIR_OR_DEVICE]   (default: a 16 GiB sparse file in ./target/bench)
# Also runs the same on a loop device (--direct-io=on --sector-size 4096)
# when losetup works. Release build; prints JSON lines and a ratio table.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v fio >/dev/null || { apt-get update -qq && apt-get install -y -qq fio >/dev/null; }
cargo build --release -p strata-benches --bin engine
mkdir -p target/bench
file="${1:-$PWD/target/bench/engine.img}"
out="target/bench/engine-$(date +%Y%m%d-%H%M%S).jsonl"

fio_json() { # name, extra fio args...
    local name=$1; shift
    fio --name="$name" --filename="$dev" --direct=1 --output-format=json "$@" \
        | python3 -c 'import json,sys; j=json.load(sys.stdin)["jobs"][0]; r=j["read"]; w=j["write"]; print(json.dumps({"case":"fio_'"$name"'","read_mb_per_s":r["bw_bytes"]/1e6,"write_mb_per_s":w["bw_bytes"]/1e6,"read_iops":r["iops"],"write_iops":w["iops"]}))'
}

run_on() {
    dev=$1; label=$2
    echo "== $label: $dev" >&2
    if [[ ! -b "$dev" ]]; then
        # Written once end to end, as fio lays out its file: both then
        # measure overwrites, not the file system allocating blocks.
        rm -f "$dev"
        dd if=/dev/zero of="$dev" bs=4M count=$((16 << 8)) oflag=direct status=none
    fi
    fio_json seq_write --rw=write --bs=1M --size=4G --ioengine=io_uring --iodepth=8 | sed "s/^{/{\"device\":\"$label\",/" | tee -a "$out"
    fio_json fsync_4k --rw=write --bs=4k --size=64M --ioengine=psync --fdatasync=1 --runtime=15 --time_based | sed "s/^{/{\"device\":\"$label\",/" | tee -a "$out"
    fio_json seq_read --rw=read --bs=1M --size=4G --ioengine=io_uring --iodepth=8 | sed "s/^{/{\"device\":\"$label\",/" | tee -a "$out"
    target/release/engine --device "$dev" --size-bytes $((16<<30)) --cases put-get,recovery | sed "s/^{/{\"device\":\"$label\",/" | tee -a "$out"
}

run_on "$file" file
# In a process of its own: the index's memory is measured as RSS growth,
# which memory freed by earlier cases and reused would hide.
for case in restart restart-versions; do
    target/release/engine --device "$file" --size-bytes $((16<<30)) --cases $case | sed "s/^{/{\"device\":\"file\",/" | tee -a "$out"
done
if img=$(mktemp -p target/bench loop.XXXX.img) && truncate -s 16G "$img" && loopdev=$(losetup --find --show --direct-io=on --sector-size 4096 "$img" 2>/dev/null); then
    trap 'losetup -d "$loopdev"; rm -f "$img"' EXIT
    run_on "$loopdev" loop
else
    echo "loop device unavailable here; file results only" >&2
fi
python3 benches/engine_report.py "$out"
