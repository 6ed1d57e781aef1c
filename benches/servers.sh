# The S3 servers the benchmarks compare, on loopback with one key pair
# (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, exported by the caller):
# strata, strata-sse (a Strata that encrypts every object), s3s-fs and
# seaweedfs. Sourced by s3bench.sh, woodpecker.sh and milvus.sh; each server
# keeps its data and its log under $bench_dir, which the caller sets.
#   install_server NAME; start_server NAME; stop_server NAME; stop_servers
#   warm_bucket NAME BUCKET; footprint_bytes NAME; peak_rss_bytes NAME
#   remove_server_data NAME

bench_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PATH="$HOME/.cargo/bin:$PATH"
declare -A server_pid server_endpoint
# Files a server leaves outside $bench_dir, removed when it stops.
declare -A server_litter
# More `strata serve` arguments, and a device to serve instead of
# $bench_dir/strata.img (s3bench.sh --loop).
strata_args=()
strata_data=
# The timed waits: a server that does not answer or stop in this long is
# broken, not slow.
server_start_timeout_s=120
server_stop_timeout_s=30
seaweedfs_venv=$bench_root/.venv-bench

build_release() { # unless the caller's --no-build set no_build=1
    if ((${no_build:-0})); then
        for bin in strata s3load; do
            [[ -x $bench_root/target/release/$bin ]] ||
                { echo "--no-build, but target/release/$bin is missing" >&2; exit 1; }
        done
        return 0
    fi
    (cd "$bench_root" && cargo build --release -p strata -p strata-benches)
}

install_server() { # name: whatever it needs that is not there yet
    case $1 in
        strata | strata-sse) ;;
        s3s-fs)
            s3s-fs --help >/dev/null 2>&1 ||
                cargo install s3s-fs@0.14.1 --features binary --locked
            ;;
        seaweedfs)
            "$bench_root/tests/interop/setup_venv.sh" "$bench_root/benches/requirements-seaweedfs.txt" \
                "$seaweedfs_venv" >&2
            ;;
        *) echo "unknown server: $1 (strata, strata-sse, s3s-fs, seaweedfs)" >&2; exit 2 ;;
    esac
}

server_data() { # name: its data file or directory
    case $1 in
        strata) echo "${strata_data:-$bench_dir/strata.img}" ;;
        strata-sse) echo "$bench_dir/strata-sse.img" ;;
        *) echo "$bench_dir/$1" ;;
    esac
}

remove_server_data() { # name: its data and whatever it kept beside (its log stays)
    case $1 in
        strata*) rm -f "$bench_dir/$1.img" ;;
        seaweedfs) rm -rf "${bench_dir:?}/seaweedfs" "$bench_dir"/seaweedfs-{s3.json,s3.sock,filer.sock} ;;
        *) rm -rf "${bench_dir:?}/$1" ;;
    esac
}

free_ports() { # count: that many free loopback ports, all different
    # All are held at once, so the kernel cannot hand out one twice.
    python3 -c 'import socket, sys
held = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in held:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in held))' "$1"
}

alive() { # pid: running (an exited child stays a zombie until waited for)
    local state
    state=$(ps -o stat= -p "$1" 2>/dev/null) && [[ $state != Z* ]]
}

start_server() { # name: starts it on fresh ports and returns once it answers S3
    local name=$1 log=$bench_dir/$1.log data port health
    data=$(server_data "$name")
    case $name in
        strata | strata-sse)
            port=$(free_ports 1)
            local kms=() sse=()
            if [[ $name == strata-sse ]]; then
                # A fresh master key in MinIO's format, from the environment.
                kms=("MINIO_KMS_SECRET_KEY=s3bench-key:$(head -c 32 /dev/urandom | base64)")
                sse=(--encrypt-new-objects true)
            fi
            env "${kms[@]}" STRATA_ACCESS_KEY="$AWS_ACCESS_KEY_ID" STRATA_SECRET_KEY="$AWS_SECRET_ACCESS_KEY" \
                "$bench_root/target/release/strata" serve --address "127.0.0.1:$port" --data "$data" \
                "${sse[@]}" "${strata_args[@]}" >"$log" 2>&1 &
            health=strata
            ;;
        s3s-fs)
            port=$(free_ports 1)
            mkdir -p "$data"
            s3s-fs --host 127.0.0.1 --port "$port" --access-key "$AWS_ACCESS_KEY_ID" \
                --secret-key "$AWS_SECRET_ACCESS_KEY" "$data" >"$log" 2>&1 &
            health=any
            ;;
        seaweedfs)
            local master master_grpc volume volume_grpc filer filer_grpc s3_grpc
            read -r port master master_grpc volume volume_grpc filer filer_grpc s3_grpc < <(free_ports 8)
            mkdir -p "$data"
            # Outside the data directory, so that du measures data only.
            local identities=$bench_dir/seaweedfs-s3.json
            cat >"$identities" <<EOF
{"identities": [{"name": "bench",
  "credentials": [{"accessKey": "$AWS_ACCESS_KEY_ID", "secretKey": "$AWS_SECRET_ACCESS_KEY"}],
  "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}
EOF
            # Every port is given: the gRPC ones default to HTTP port + 10000,
            # past 65535 for an ephemeral port. Iceberg and Lance are off; no
            # pre-stop grace (10 s by default); glog only to the log file.
            "$seaweedfs_venv/bin/weed" -logtostderr server -ip=127.0.0.1 -ip.bind=127.0.0.1 \
                -dir="$data" -volume.max=200 -volume.preStopSeconds=0 \
                -master.port="$master" -master.port.grpc="$master_grpc" \
                -volume.port="$volume" -volume.port.grpc="$volume_grpc" \
                -filer.port="$filer" -filer.port.grpc="$filer_grpc" \
                -filer.localSocket="$bench_dir/seaweedfs-filer.sock" \
                -s3 -s3.port="$port" -s3.port.grpc="$s3_grpc" -s3.config="$identities" \
                -s3.localSocket="$bench_dir/seaweedfs-s3.sock" \
                -s3.port.iceberg=0 -s3.port.lance=0 >"$log" 2>&1 &
            # Its S3 port answers before the filer behind it is up.
            health=signed
            server_litter[$name]=/tmp/seaweedfs-s3-grpc-$s3_grpc.sock
            ;;
        *) echo "unknown server: $name" >&2; exit 2 ;;
    esac
    server_pid[$name]=$!
    server_endpoint[$name]=http://127.0.0.1:$port
    local url=${server_endpoint[$name]} code deadline=$((SECONDS + server_start_timeout_s))
    while ((SECONDS < deadline)); do
        case $health in
            # /health answers while recovery runs; ready waits for it.
            strata) code=$(curl -s -o /dev/null -w '%{http_code}' "$url/minio/health/ready" || true) ;;
            any) code=$(curl -s -o /dev/null -w '%{http_code}' "$url/" || true) ;;
            signed) code=$(curl -s -o /dev/null -w '%{http_code}' --aws-sigv4 aws:amz:us-east-1:s3 \
                --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" "$url/" || true) ;;
        esac
        case $health/$code in
            strata/200 | any/[1-5]?? | signed/200)
                echo "$name on $url (pid ${server_pid[$name]}), data in $data" >&2
                return 0
                ;;
        esac
        alive "${server_pid[$name]}" || { echo "$name exited; see $log" >&2; tail -20 "$log" >&2; exit 1; }
        sleep 0.1
    done
    echo "$name did not answer at $url within ${server_start_timeout_s} s; see $log" >&2
    exit 1
}

stop_server() { # name: SIGTERM, then SIGKILL past the timeout
    local pid=${server_pid[$1]:-} deadline=$((SECONDS + server_stop_timeout_s))
    [[ -n $pid ]] || return 0
    kill "$pid" 2>/dev/null || true
    while alive "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
    if alive "$pid"; then
        echo "$1 did not stop within ${server_stop_timeout_s} s; killed" >&2
        kill -9 "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
    unset "server_pid[$1]"
    [[ -z ${server_litter[$1]:-} ]] || rm -f "${server_litter[$1]}"
}

stop_servers() {
    local name
    for name in "${!server_pid[@]}"; do stop_server "$name"; done
}

warm_bucket() { # name, bucket: created, and one object written to it
    # SeaweedFS grows a bucket's volumes at its first write, which takes
    # seconds; a timed run should not start with that.
    local said
    said=$("$bench_root/target/release/s3load" --endpoint "${server_endpoint[$1]}" --bucket "$2" \
        --mode put --ops 1 --concurrency 1 --size 4096 --label warm 2>&1 >/dev/null) ||
        { echo "$1: could not write to bucket $2: $said" >&2; exit 1; }
}

footprint_bytes() { # name: what it has allocated on disk
    if [[ $1 == strata* ]]; then
        # The data file (or a loop device's backing file) is sparse.
        du -B1 "$bench_dir/$1.img" | cut -f1
    else
        du -sB1 "$(server_data "$1")" | cut -f1
    fi
}

peak_rss_bytes() { # name: its peak resident set so far (VmHWM)
    local kib
    kib=$(awk '/^VmHWM:/ {print $2}' "/proc/${server_pid[$1]}/status")
    echo $((kib * 1024))
}
