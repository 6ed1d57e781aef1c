"""Hostile and overloading clients against the real server, with every
deadline set to one second: idle and trickling connections are closed, a
stalled body fails with RequestTimeout and leaves nothing, floods of idle
connections (from one address, and from many) leave other clients and the
health probes served, too many requests (and requests while the runtime's
queue overflows) are shed with 503 SlowDown while the others are answered
correctly, and a client that stops reading a GET is
dropped. After each, the server serves normally and has lost nothing."""

from __future__ import annotations

import http.client
import re
import resource
import socket
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from botocore.exceptions import ClientError

from conftest import make_boto3_client, unique_bucket_name
from s3util import MiB, rand_bytes

TIMEOUTS = ["--header-timeout-ms", "1000", "--idle-timeout-ms", "1000",
            "--body-timeout-ms", "1000", "--send-timeout-ms", "1000"]


@pytest.fixture(scope="module", autouse=True)
def many_files():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def metric(srv, name, label=None) -> float:
    text = urllib.request.urlopen(f"{srv.endpoint_url}/metrics", timeout=5).read().decode()
    total = 0.0
    for line in text.splitlines():
        m = re.match(rf'{name}(\{{[^}}]*\}})? (\S+)$', line)
        if m and (label is None or f'"{label}"' in (m.group(1) or "")):
            total += float(m.group(2))
    return total


def health(srv) -> int:
    with urllib.request.urlopen(f"{srv.endpoint_url}/minio/health/live", timeout=5) as r:
        return r.status


def closed_within(sock, seconds) -> bool:
    """Whether the server closes the socket within `seconds`."""
    sock.settimeout(seconds)
    try:
        return sock.recv(1 << 16) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


def connect(srv, source="127.0.0.1"):
    s = socket.socket()
    s.bind((source, 0))
    s.connect((srv.host, srv.port))
    return s


def assert_serves(srv, s3, bucket, tag):
    s3.put_object(Bucket=bucket, Key=f"after-{tag}", Body=tag.encode())
    assert s3.get_object(Bucket=bucket, Key=f"after-{tag}")["Body"].read() == tag.encode()
    assert health(srv) == 200


@pytest.fixture(scope="module")
def guarded(server_factory):
    srv = server_factory("hostile", TIMEOUTS + ["--max-connections", "600"])
    s3 = make_boto3_client(srv)
    bucket = unique_bucket_name("hostile")
    s3.create_bucket(Bucket=bucket)
    return srv, s3, bucket


def test_idle_and_trickling_connections_are_closed(guarded):
    srv, s3, bucket = guarded
    idle = connect(srv)
    assert closed_within(idle, 3), "a connection that sends nothing is closed"
    trickle = connect(srv)
    head = b"GET /minio/health/live HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 40 + b"\r\n\r\n"
    closed = False
    started = time.monotonic()
    for b in head:
        try:
            trickle.send(bytes([b]))
        except (BrokenPipeError, ConnectionResetError):
            closed = True
            break
        time.sleep(0.1)
        if time.monotonic() - started > 4:
            break
    assert closed or closed_within(trickle, 1), "a head trickled a byte at a time is cut off"
    # A keep-alive connection idle past the idle timeout is closed.
    conn = http.client.HTTPConnection(srv.host, srv.port, timeout=5)
    conn.request("GET", "/minio/health/live")
    response = conn.getresponse()
    response.read()
    assert response.status == 200
    assert closed_within(conn.sock, 3)
    assert metric(srv, "strata_timeouts_total", "header") >= 2
    assert metric(srv, "strata_timeouts_total", "idle") >= 1
    assert_serves(srv, s3, bucket, "slowloris")


def test_a_stalled_body_times_out_and_leaves_nothing(guarded):
    srv, s3, bucket = guarded
    # Signed as UNSIGNED-PAYLOAD through a presigned URL, so the body can stop halfway.
    url = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "stalled"}, ExpiresIn=60)
    path = url.split(f"{srv.port}", 1)[1]
    sock = connect(srv)
    sock.sendall(f"PUT {path} HTTP/1.1\r\nHost: {srv.netloc}\r\nContent-Length: {4 * MiB}\r\n\r\n".encode())
    sock.sendall(rand_bytes(1 * MiB, "half"))
    sock.settimeout(5)
    answer = b""
    try:
        while b"\r\n\r\n" not in answer:
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    except socket.timeout:
        pytest.fail("the server never gave up on the stalled body")
    assert answer.startswith(b"HTTP/1.1 400") and b"RequestTimeout" in answer + sock.recv(4096), answer
    sock.close()
    with pytest.raises(ClientError):
        s3.head_object(Bucket=bucket, Key="stalled")
    assert metric(srv, "strata_timeouts_total", "body") >= 1
    assert_serves(srv, s3, bucket, "stalled-body")


class Flood:
    """Keeps `count` idle connections open from the given addresses,
    reopening what the server closes, until stopped."""

    def __init__(self, srv, sources, count):
        self.srv, self.sources, self.count = srv, sources, count
        self.stop = threading.Event()
        self.opened = 0
        self.alive_at_end = None
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        socks = []
        while not self.stop.is_set():
            socks = [s for s in socks if not self.dead(s)]
            while len(socks) < self.count and not self.stop.is_set():
                try:
                    socks.append(connect(self.srv, self.sources[len(socks) % len(self.sources)]))
                    self.opened += 1
                except OSError:
                    break
            time.sleep(0.05)
        time.sleep(0.2)
        self.alive_at_end = sum(not self.dead(s) for s in socks)
        for s in socks:
            s.close()

    @staticmethod
    def dead(s):
        s.setblocking(False)
        try:
            return s.recv(1) == b""
        except BlockingIOError:
            return False
        except OSError:
            return True

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 10
        while self.opened < self.count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(30)


def keep_working(srv, bucket, seconds, tag):
    """PUTs and GETs on one kept-alive connection, and health probes on new
    ones, for `seconds`; returns (requests, failures)."""
    s3 = make_boto3_client(srv, max_pool_connections=1)
    s3.head_bucket(Bucket=bucket)  # the connection, opened before the flood is full
    done = failures = 0
    errors = []
    deadline = time.monotonic() + seconds
    i = 0
    while time.monotonic() < deadline:
        data = f"{tag}-{i}".encode()
        try:
            s3.put_object(Bucket=bucket, Key=f"{tag}/{i}", Body=data)
            assert s3.get_object(Bucket=bucket, Key=f"{tag}/{i}")["Body"].read() == data
            assert health(srv) == 200
        except Exception as e:
            failures += 1
            errors.append(repr(e)[:200])
        done += 1
        i += 1
    return done, failures, errors[:3]


def test_idle_connections_from_one_address_take_only_its_share(guarded):
    """2,000 idle connections from one address: it holds at most its
    share (half the cap), its newest taking its idlest's places, while
    another client keeps working and probes are answered."""
    srv, s3, bucket = guarded
    before = metric(srv, "strata_connections_evicted_total")
    # Another client is already connected when the flood starts.
    with ThreadPoolExecutor(1) as pool:
        worker = pool.submit(keep_working, srv, bucket, 4, "one-address")
        time.sleep(0.3)
        with Flood(srv, ["127.0.0.2"], 2000) as flood:
            assert flood.opened >= 300
            done, failures, errors = worker.result()
    assert done > 5 and failures == 0, (done, failures, errors)
    assert metric(srv, "strata_connections_evicted_total") > before
    # Its share, and the 16 places past the cap that serve only probes
    # (a newcomer takes one when no connection has waited long enough to
    # give way).
    assert 0 < flood.alive_at_end <= 300 + 16, flood.alive_at_end
    assert_serves(srv, s3, bucket, "one-address")


def test_a_flood_from_many_addresses_leaves_probes_and_open_clients_served(guarded):
    """Idle connections from 40 addresses, twice the cap: each newcomer
    takes the place of the connection idle longest, so the flood churns
    through itself while everyone else is served."""
    srv, s3, bucket = guarded
    before = metric(srv, "strata_connections_evicted_total")
    sources = [f"127.0.0.{i}" for i in range(2, 42)]
    with ThreadPoolExecutor(1) as pool:
        worker = pool.submit(keep_working, srv, bucket, 4, "many-addresses")
        time.sleep(0.3)
        with Flood(srv, sources, 1200):
            # On a busy machine the flood may take a while to fill the cap
            # (the header timeout keeps closing what it opened): give it
            # as long as the worker works, and up to 10 s more.
            deadline = time.monotonic() + 10
            while (metric(srv, "strata_connections_evicted_total") <= before
                   and time.monotonic() < deadline):
                time.sleep(0.1)
            done, failures, errors = worker.result()
    assert done > 5 and failures == 0, (done, failures, errors)
    assert metric(srv, "strata_connections_evicted_total") > before
    # The flood gone, new clients are served as before.
    time.sleep(1.5)
    assert_serves(srv, make_boto3_client(srv), bucket, "many-addresses")


def read_head(sock, timeout=5) -> bytes:
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def test_too_many_requests_are_shed_and_the_rest_answered(server_factory):
    """64 PUTs at once against a cap of 8 requests in flight: each holds
    its request open by sending its body slowly, so exactly 8 are in
    service and the other 56 are answered 503 SlowDown at once; the 8 then
    finish and store exactly their bytes."""
    srv = server_factory("shedding", ["--max-requests", "8", "--body-timeout-ms", "10000"])
    s3 = make_boto3_client(srv)
    bucket = unique_bucket_name("shed")
    s3.create_bucket(Bucket=bucket)
    size = 64 * 1024
    bodies = {i: rand_bytes(size, f"shed-{i}") for i in range(64)}
    socks = {}
    for i in range(64):
        url = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": f"k{i}"}, ExpiresIn=60)
        path = url.split(f"{srv.port}", 1)[1]
        sock = connect(srv)
        sock.sendall(f"PUT {path} HTTP/1.1\r\nHost: {srv.netloc}\r\nContent-Length: {size}\r\n\r\n".encode())
        sock.sendall(bodies[i][:1])
        socks[i] = sock
    time.sleep(0.5)
    shed, held = [], []
    for i, sock in socks.items():
        sock.setblocking(False)
        try:
            first = sock.recv(4096)
        except BlockingIOError:
            held.append(i)
            continue
        sock.setblocking(True)
        head = first + read_head(sock)
        assert head.startswith(b"HTTP/1.1 503") and b"SlowDown" in head + sock.recv(4096), head
        shed.append(i)
    assert len(held) == 8 and len(shed) == 56, (len(held), len(shed))
    for i in held:
        socks[i].setblocking(True)
        socks[i].sendall(bodies[i][1:])
        assert read_head(socks[i]).startswith(b"HTTP/1.1 200")
    for sock in socks.values():
        sock.close()
    for i in held:
        assert s3.get_object(Bucket=bucket, Key=f"k{i}")["Body"].read() == bodies[i]
    for i in shed:
        with pytest.raises(ClientError):
            s3.head_object(Bucket=bucket, Key=f"k{i}")
    assert metric(srv, "strata_requests_shed_total", "requests") == 56
    assert_serves(srv, s3, bucket, "shed")


def read_response(sock):
    """One whole answer with a Content-Length body: (head, body)."""
    head = read_head(sock)
    head_part, _, body = head.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length: *(\d+)", head_part).group(1))
    while len(body) < length:
        body += sock.recv(length - len(body))
    return head_part, body


def test_a_shed_small_put_keeps_its_connection(server_factory):
    """A 4 KiB PUT answered 503 while the one request allowed is in service
    leaves its connection usable: its client goes on over it rather than
    connecting again (under overload, perhaps to be refused at a cap)."""
    srv = server_factory("shed-small", ["--max-requests", "1", "--body-timeout-ms", "10000"])
    s3 = make_boto3_client(srv)
    bucket = unique_bucket_name("shed-small")
    s3.create_bucket(Bucket=bucket)

    def put_request(key, body):
        url = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": key},
                                        ExpiresIn=60)
        path = url.split(f"{srv.port}", 1)[1]
        return (f"PUT {path} HTTP/1.1\r\nHost: {srv.netloc}\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode() + body

    held_body = rand_bytes(1024, "held")
    held = connect(srv)
    held.sendall(put_request("held", held_body)[:-1023])  # in service, its body withheld
    time.sleep(0.3)
    small = rand_bytes(4096, "small")
    sock = connect(srv)
    sock.settimeout(5)
    sock.sendall(put_request("small", small))
    head, body = read_response(sock)
    assert head.startswith(b"HTTP/1.1 503") and b"SlowDown" in body, head + body
    held.sendall(held_body[1:])
    assert read_head(held).startswith(b"HTTP/1.1 200")
    held.close()
    # The same connection, the same PUT: served.
    sock.sendall(put_request("small", small))
    head, _ = read_response(sock)
    assert head.startswith(b"HTTP/1.1 200"), head
    sock.close()
    assert s3.get_object(Bucket=bucket, Key="small")["Body"].read() == small
    assert s3.get_object(Bucket=bucket, Key="held")["Body"].read() == held_body


def test_requests_are_shed_while_the_runtime_queue_overflows(server_factory):
    """1,500 connections send a GET each at once: more ready connections
    than the workers' own queues hold, so the runtime's shared queue fills.
    Past --max-queued-tasks (1 here) new requests are answered 503
    SlowDown (counted as reason "queue"); the others get their object
    whole, and afterwards the server serves normally."""
    srv = server_factory("queue", ["--max-queued-tasks", "1", "--max-connections", "4000",
                                   "--max-connections-per-address", "4000"])
    s3 = make_boto3_client(srv)
    bucket = unique_bucket_name("queue")
    s3.create_bucket(Bucket=bucket)
    body = rand_bytes(4096, "queue")
    s3.put_object(Bucket=bucket, Key="k", Body=body)
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "k"}, ExpiresIn=300)
    request = (f"GET {url.split(str(srv.port), 1)[1]} HTTP/1.1\r\nHost: {srv.netloc}\r\n"
               f"Connection: close\r\n\r\n").encode()
    socks = [connect(srv) for _ in range(1500)]
    for sock in socks:
        sock.sendall(request)
    statuses = {}
    for sock in socks:
        sock.settimeout(30)
        answer = b""
        while chunk := sock.recv(1 << 16):
            answer += chunk
        sock.close()
        head, _, payload = answer.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        statuses[status] = statuses.get(status, 0) + 1
        if status == 200:
            assert payload == body
        else:
            assert status == 503 and b"SlowDown" in payload, answer[:300]
    assert statuses.get(503, 0) > 0 and statuses.get(200, 0) > 0, statuses
    assert metric(srv, "strata_requests_shed_total", "queue") == statuses[503]
    assert_serves(srv, s3, bucket, "queue")


def test_a_client_that_stops_reading_is_dropped(guarded):
    srv, s3, bucket = guarded
    data = rand_bytes(64 * MiB, "slow-reader")
    s3.put_object(Bucket=bucket, Key="big", Body=data)
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "big"}, ExpiresIn=60)
    path = url.split(f"{srv.port}", 1)[1]
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    sock.connect((srv.host, srv.port))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {srv.netloc}\r\n\r\n".encode())
    sock.recv(4096)  # the head, then nothing more is read
    before = metric(srv, "strata_timeouts_total", "send")
    deadline = time.monotonic() + 10
    while metric(srv, "strata_timeouts_total", "send") == before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert metric(srv, "strata_timeouts_total", "send") > before, "the stalled download was never dropped"
    sock.close()
    got = s3.get_object(Bucket=bucket, Key="big")["Body"].read()
    assert got == data
    assert_serves(srv, s3, bucket, "slow-reader")
