"""Fixtures for the Strata client-interoperability suite.

The server under test is the `strata` binary named by $STRATA_BIN. Each server
gets its own temp dir (data file + log). The shared `server` fixture lives for
the whole session; tests that kill the server use their own (`server_factory`).

Environment:
  STRATA_BIN          absolute path of the strata executable (required)
  STRATA_EXTRA_ARGS   extra arguments appended to `strata serve` (shell-split)
  STRATA_KEEP_DATA=1  keep data files even when every test passed
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import boto3
import pytest
import urllib3
from botocore.config import Config
from minio import Minio

sys.path.insert(0, str(Path(__file__).resolve().parent))

ACCESS_KEY = "AKIDSTRATATEST"
SECRET_KEY = "strataTestSecretKey0123456789abcdefGHIJK"  # 40 chars
REGION = "us-east-1"
SIZE_BYTES = 8 * 1024 ** 3
SEGMENT_SIZE_BYTES = 64 * 1024 ** 2
READY_TIMEOUT = 30.0

assert len(SECRET_KEY) == 40

_SERVERS: list["StrataServer"] = []


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _http_status(url: str, timeout: float = 2.0):
    # Test servers with TLS use throwaway self-signed certificates.
    context = ssl._create_unverified_context() if url.startswith("https:") else None
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except (urllib.error.URLError, OSError):
        return None


class StrataServer:
    """One `strata serve` process on 127.0.0.1:<port> over <workdir>/data.img."""

    def __init__(self, binary: str, workdir: Path, name: str = "strata", extra_args=()):
        self.binary = binary
        self.extra_args = list(extra_args)
        self.workdir = Path(workdir)
        self.name = name
        self.host = "127.0.0.1"
        self.port = _free_port()
        self.access_key = ACCESS_KEY
        self.secret_key = SECRET_KEY
        self.region = REGION
        self.data_path = self.workdir / "data.img"
        self.log_path = self.workdir / "strata.log"
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        # Added to the server's environment at each start.
        self.extra_env: dict[str, str] = {}

    # -- addresses ---------------------------------------------------------
    @property
    def endpoint_url(self) -> str:
        scheme = "https" if "--tls-cert" in self.extra_args else "http"
        return f"{scheme}://{self.host}:{self.port}"

    @property
    def netloc(self) -> str:
        return f"{self.host}:{self.port}"

    # -- lifecycle ---------------------------------------------------------
    def command(self) -> list[str]:
        cmd = [self.binary, "serve",
               "--address", self.netloc,
               "--data", str(self.data_path),
               "--size-bytes", str(SIZE_BYTES),
               "--segment-size-bytes", str(SEGMENT_SIZE_BYTES)]
        cmd += self.extra_args
        # Test servers run side by side: none takes the console's default
        # port unless a test asks for a console.
        if "--console-address" not in self.extra_args:
            cmd += ["--console-address", ""]
        cmd += shlex.split(os.environ.get("STRATA_EXTRA_ARGS", ""))
        return cmd

    def _spawn(self):
        env = dict(os.environ)
        env["STRATA_ACCESS_KEY"] = self.access_key
        env["STRATA_SECRET_KEY"] = self.secret_key
        env.update(self.extra_env)
        env.setdefault("RUST_BACKTRACE", "1")
        env.setdefault("RUST_LOG", "info")
        env.setdefault("NO_COLOR", "1")  # plain log file
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== [{time.strftime('%H:%M:%S')}] start #{self.starts}: "
                      f"{shlex.join(self.command())}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=env, start_new_session=True)

    def start(self):
        assert self.proc is None or self.proc.poll() is not None, "already running"
        for attempt in range(3):
            self._spawn()
            try:
                self.wait_ready()
                return self
            except _ExitedEarly:
                # Lost the race for the port we picked? Try another one.
                if attempt < 2 and re.search(r"(?i)address.{0,20}in use|EADDRINUSE", self.log_tail(20)):
                    self.port = _free_port()
                    continue
                raise RuntimeError(f"{self.name}: strata exited during start-up "
                                   f"(code {self.proc.returncode})\n{self.log_tail()}") from None

    def wait_ready(self, timeout: float = READY_TIMEOUT):
        deadline = time.monotonic() + timeout
        url = f"{self.endpoint_url}/minio/health/ready"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise _ExitedEarly()
            if _http_status(url, timeout=1.0) == 200:
                return
            time.sleep(0.05)
        raise RuntimeError(f"{self.name}: not ready after {timeout:.0f}s "
                           f"(GET {url} never answered 200)\n{self.log_tail()}")

    def kill9(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self, timeout: float = 20.0):
        """Graceful stop (SIGTERM), SIGKILL after timeout. Returns the exit code."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGKILL)
                self.proc.wait(timeout=30)
        return self.proc.returncode

    def restart(self, kill9: bool = True):
        """Stop (SIGKILL by default, else SIGTERM) and start again on the same
        data file and port; returns once the server is ready again."""
        if kill9:
            self.kill9()
        else:
            self.stop()
        self.start()
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def ensure_alive(self):
        if not self.alive():
            code = None if self.proc is None else self.proc.returncode
            pytest.fail(f"{self.name}: strata is not running (exit code {code})\n{self.log_tail()}",
                        pytrace=False)

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return f"(no log at {self.log_path})"
        tail = text.splitlines()[-lines:]
        return f"--- last {len(tail)} lines of {self.log_path} ---\n" + "\n".join(tail)


class _ExitedEarly(Exception):
    pass


# --------------------------------------------------------------------------
# hooks: show the server's log tail with every failing test
# --------------------------------------------------------------------------

@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for srv in _SERVERS:
            if srv.proc is None:
                continue
            state = "running" if srv.alive() else f"EXITED with code {srv.proc.returncode}"
            rep.sections.append((f"strata log: {srv.name} ({state})", srv.log_tail(40)))


# --------------------------------------------------------------------------
# servers
# --------------------------------------------------------------------------

def _strata_bin() -> str:
    b = os.environ.get("STRATA_BIN")
    if not b:
        pytest.fail("STRATA_BIN is not set: export STRATA_BIN=/abs/path/to/strata "
                    "(or use tests/interop/run.sh)", pytrace=False)
    if not (os.path.isfile(b) and os.access(b, os.X_OK)):
        pytest.fail(f"STRATA_BIN={b} is not an executable file", pytrace=False)
    return os.path.abspath(b)


@pytest.fixture(scope="session")
def server_factory(tmp_path_factory, request):
    """Call with a name to start a fresh server on its own data file."""
    made: list[StrataServer] = []

    def make(name: str = "strata", extra_args=()) -> StrataServer:
        srv = StrataServer(_strata_bin(), tmp_path_factory.mktemp(name), name, extra_args)
        _SERVERS.append(srv)
        made.append(srv)
        srv.start()
        return srv

    yield make
    for srv in made:
        srv.stop()
        if request.session.testsfailed == 0 and not os.environ.get("STRATA_KEEP_DATA"):
            try:
                srv.data_path.unlink()
            except OSError:
                pass


@pytest.fixture(scope="session")
def server(server_factory):
    """The shared server for tests that do not restart it."""
    return server_factory("shared")


# --------------------------------------------------------------------------
# clients
# --------------------------------------------------------------------------

def boto3_config(**overrides) -> Config:
    kw = dict(signature_version="s3v4", region_name=REGION,
              s3={"addressing_style": "path"},
              retries={"max_attempts": 1, "mode": "standard"},  # no retries: see every error
              connect_timeout=5, read_timeout=120, max_pool_connections=16)
    kw.update(overrides)
    return Config(**kw)


def make_boto3_client(srv: StrataServer, access_key=None, secret_key=None, **config):
    return boto3.session.Session().client(
        "s3", endpoint_url=srv.endpoint_url, region_name=REGION,
        aws_access_key_id=access_key or srv.access_key,
        aws_secret_access_key=secret_key or srv.secret_key,
        config=boto3_config(**config))


def make_minio_client(srv: StrataServer, region: str | None = REGION) -> Minio:
    http = urllib3.PoolManager(timeout=urllib3.Timeout(connect=5, read=120),
                               retries=urllib3.Retry(total=0, redirect=0), maxsize=16)
    return Minio(srv.netloc, access_key=srv.access_key, secret_key=srv.secret_key,
                 secure=False, region=region, http_client=http)


@pytest.fixture(scope="session")
def s3(server):
    """boto3 S3 client (SigV4, path style, us-east-1, SDK-default checksums)."""
    return make_boto3_client(server)


@pytest.fixture(scope="session")
def mc(server):
    """minio.Minio client (plain HTTP)."""
    return make_minio_client(server)


# --------------------------------------------------------------------------
# buckets
# --------------------------------------------------------------------------

def unique_bucket_name(hint: str = "t") -> str:
    hint = re.sub(r"[^a-z0-9-]+", "-", hint.lower()).strip("-")[:40].strip("-") or "t"
    return f"t-{hint}-{uuid.uuid4().hex[:10]}"


def purge_bucket(client, name: str):
    """Best effort: abort uploads, delete every version (governance locks
    bypassed; legal holds lifted), delete the bucket."""
    try:
        for page in client.get_paginator("list_multipart_uploads").paginate(Bucket=name):
            for u in page.get("Uploads", []):
                client.abort_multipart_upload(Bucket=name, Key=u["Key"], UploadId=u["UploadId"])
    except Exception:
        pass
    try:
        for page in client.get_paginator("list_object_versions").paginate(Bucket=name):
            versions = page.get("Versions", []) + page.get("DeleteMarkers", [])
            keys = [{"Key": v["Key"], "VersionId": v["VersionId"]} for v in versions]
            if keys:
                client.delete_objects(Bucket=name, Delete={"Objects": keys, "Quiet": True},
                                      BypassGovernanceRetention=True)
        client.delete_bucket(Bucket=name)
    except Exception:
        pass


@pytest.fixture
def bucket_factory(server, s3, request):
    """make() -> name of a new, empty bucket; all are purged after the test."""
    made = []

    def make(hint: str | None = None) -> str:
        server.ensure_alive()
        name = unique_bucket_name(hint or request.node.name)
        s3.create_bucket(Bucket=name)
        made.append(name)
        return name

    yield make
    if server.alive():
        for name in made:
            purge_bucket(s3, name)


@pytest.fixture
def bucket(bucket_factory):
    """A fresh, empty bucket for this test."""
    return bucket_factory()
