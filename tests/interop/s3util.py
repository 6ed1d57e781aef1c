"""Helpers shared by the interop tests.

- deterministic test data and the digests S3 exposes (MD5 ETags, CRC32,
  CRC32C, SHA1, SHA256 in the base64 form of the x-amz-checksum-* headers);
- a small, self-contained SigV4 signer for requests that no SDK will send
  for us (malformed XML, bad payload hashes, truncated bodies, aws-chunked
  streaming uploads with and without trailers). Its output is checked against
  botocore's signer and against the worked examples in the AWS documentation
  by test_signer_selfcheck.py, so a failure against the server is the server's;
- raw HTTP helpers and S3 error-XML parsing.

Only the standard library (plus pytest/botocore for error assertions).
"""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import hmac
import http.client
import random
import socket
import struct
import urllib.parse
import xml.etree.ElementTree as ET
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pytest
from botocore.exceptions import ClientError

KiB = 1024
MiB = 1024 * 1024

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
STREAMING_SIGNED = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
STREAMING_SIGNED_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
STREAMING_UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"


# --------------------------------------------------------------------------
# data and digests
# --------------------------------------------------------------------------

def rand_bytes(n: int, seed) -> bytes:
    """n pseudo-random (incompressible) bytes, reproducible from seed."""
    return random.Random(seed).randbytes(n)


def md5_hex(b: bytes) -> str:
    return hashlib.md5(b).hexdigest()


def md5_b64(b: bytes) -> str:
    return base64.b64encode(hashlib.md5(b).digest()).decode()


def sha256_hex(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def file_sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            chunk = f.read(4 * MiB)
            if not chunk:
                return h.hexdigest()
            h.update(chunk)


def etag_single(b: bytes) -> str:
    """The quoted ETag S3 gives a single-PUT object: its MD5 in hex."""
    return '"%s"' % md5_hex(b)


def etag_multipart(parts) -> str:
    """The quoted ETag of a completed multipart upload: md5(md5(p1)||md5(p2)..)-N."""
    joined = b"".join(hashlib.md5(p).digest() for p in parts)
    return '"%s-%d"' % (hashlib.md5(joined).hexdigest(), len(parts))


def split_parts(b: bytes, part_size: int):
    return [b[i:i + part_size] for i in range(0, len(b), part_size)] or [b""]


def _crc32c_table():
    poly = 0x82F63B78
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        table.append(c)
    return table


_CRC32C_TABLE = _crc32c_table()


def crc32c(b: bytes, crc: int = 0) -> int:
    """CRC-32C (Castagnoli), pure Python: use on small inputs only."""
    t = _CRC32C_TABLE
    crc ^= 0xFFFFFFFF
    for byte in b:
        crc = t[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _crc64nvme_table():
    poly = 0x9A6C9329AC4BC9B5  # CRC-64/NVME, reflected
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        table.append(c)
    return table


_CRC64NVME_TABLE = _crc64nvme_table()


def crc64nvme(b: bytes, crc: int = 0) -> int:
    """CRC-64/NVME (the x-amz-checksum-crc64nvme algorithm), pure Python: small inputs only."""
    t = _CRC64NVME_TABLE
    mask = 0xFFFFFFFFFFFFFFFF
    crc ^= mask
    for byte in b:
        crc = t[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ mask


def checksum_b64(algorithm: str, b: bytes) -> str:
    """Value of the x-amz-checksum-<algorithm> header for body b."""
    a = algorithm.upper()
    if a == "CRC32":
        raw = struct.pack(">I", zlib.crc32(b) & 0xFFFFFFFF)
    elif a == "CRC32C":
        raw = struct.pack(">I", crc32c(b))
    elif a == "CRC64NVME":
        raw = struct.pack(">Q", crc64nvme(b))
    elif a == "SHA1":
        raw = hashlib.sha1(b).digest()
    elif a == "SHA256":
        raw = hashlib.sha256(b).digest()
    else:
        raise ValueError(algorithm)
    return base64.b64encode(raw).decode()


def put_many(s3, bucket, keys, workers=8, body=None):
    """PUT every key (body: the key's UTF-8 bytes unless given), in parallel."""
    def one(k):
        s3.put_object(Bucket=bucket, Key=k, Body=body if body is not None else k.encode())
    with ThreadPoolExecutor(workers) as ex:
        list(ex.map(one, keys))


# --------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------

def expect_client_error(fn, code, status=None):
    """Run fn(); it must raise botocore ClientError with this S3 error code
    (a string, or a collection of acceptable strings) and HTTP status."""
    with pytest.raises(ClientError) as ei:
        fn()
    resp = ei.value.response
    got = resp.get("Error", {}).get("Code")
    ok = got in code if isinstance(code, (set, tuple, list, frozenset)) else got == code
    assert ok, f"expected error {code!r}, got {got!r}: {resp.get('Error')}"
    if status is not None:
        assert resp["ResponseMetadata"]["HTTPStatusCode"] == status, resp["ResponseMetadata"]
    return resp


def xml_error_code(body: bytes):
    """The <Code> of an S3 error document, or None when body is not one."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return None
    for el in root.iter():
        if el.tag.rsplit("}", 1)[-1] == "Code":
            return el.text
    return None


# --------------------------------------------------------------------------
# SigV4
# --------------------------------------------------------------------------

def uri_encode(s: str, keep_slash: bool) -> str:
    """AWS URI encoding: every byte but A-Za-z0-9-_.~ percent-encoded
    (upper-case hex); '/' kept in paths."""
    return urllib.parse.quote(s, safe="/-_.~" if keep_slash else "-_.~")


def amz_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


@dataclass
class Signer:
    access_key: str
    secret_key: str
    region: str = "us-east-1"
    service: str = "s3"

    def signing_key(self, datestamp: str) -> bytes:
        k = _hmac(("AWS4" + self.secret_key).encode(), datestamp)
        k = _hmac(k, self.region)
        k = _hmac(k, self.service)
        return _hmac(k, "aws4_request")

    def scope(self, amz_date: str) -> str:
        return f"{amz_date[:8]}/{self.region}/{self.service}/aws4_request"

    @staticmethod
    def canonical_query(query) -> str:
        items = sorted((uri_encode(k, False), uri_encode(v, False)) for k, v in query)
        return "&".join(f"{k}={v}" for k, v in items)

    def sign(self, method: str, path: str, query, headers: dict, payload_hash: str,
             amz_date: str | None = None):
        """Sign a request. path is the encoded request path exactly as sent;
        query a list of (name, value) pairs (not encoded); headers must hold
        'host'. Adds x-amz-date and x-amz-content-sha256 (unless present) and
        returns (headers with Authorization, signature)."""
        amz_date = amz_date or headers.get("x-amz-date") or amz_now()
        h = {k.lower(): str(v) for k, v in headers.items()}
        h["x-amz-date"] = amz_date
        h.setdefault("x-amz-content-sha256", payload_hash)
        signed = sorted(k for k in h if k not in ("authorization", "user-agent", "expect"))
        canonical_headers = "".join(f"{k}:{' '.join(h[k].strip().split())}\n" for k in signed)
        signed_headers = ";".join(signed)
        creq = "\n".join([method, path, self.canonical_query(query or []),
                          canonical_headers, signed_headers, payload_hash])
        scope = self.scope(amz_date)
        sts = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                         hashlib.sha256(creq.encode()).hexdigest()])
        sig = hmac.new(self.signing_key(amz_date[:8]), sts.encode(), hashlib.sha256).hexdigest()
        h["authorization"] = (f"AWS4-HMAC-SHA256 Credential={self.access_key}/{scope}, "
                              f"SignedHeaders={signed_headers}, Signature={sig}")
        return h, sig

    def chunk_signature(self, amz_date: str, previous: str, chunk: bytes) -> str:
        sts = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", amz_date, self.scope(amz_date), previous,
                         EMPTY_SHA256, hashlib.sha256(chunk).hexdigest()])
        return hmac.new(self.signing_key(amz_date[:8]), sts.encode(), hashlib.sha256).hexdigest()

    def trailer_signature(self, amz_date: str, previous: str, trailer_lines: str) -> str:
        """trailer_lines: 'name:value\\n' for each trailing header."""
        sts = "\n".join(["AWS4-HMAC-SHA256-TRAILER", amz_date, self.scope(amz_date), previous,
                         hashlib.sha256(trailer_lines.encode()).hexdigest()])
        return hmac.new(self.signing_key(amz_date[:8]), sts.encode(), hashlib.sha256).hexdigest()


def aws_chunked_body(data: bytes, chunk_size: int, *, signer: Signer | None = None,
                     amz_date: str = "", seed_signature: str = "",
                     trailers: list[tuple[str, str]] | None = None) -> bytes:
    """Encode data as an aws-chunked body.

    With a signer: signed chunks (chunk-signature chained from seed_signature),
    and, when trailers are given, a signed trailer (x-amz-trailer-signature).
    Without: plain chunks, as in STREAMING-UNSIGNED-PAYLOAD-TRAILER."""
    out = bytearray()
    prev = seed_signature
    chunks = [data[i:i + chunk_size] for i in range(0, len(data), chunk_size)] + [b""]
    for c in chunks:
        if signer:
            prev = signer.chunk_signature(amz_date, prev, c)
            out += b"%x;chunk-signature=%s\r\n" % (len(c), prev.encode())
        else:
            out += b"%x\r\n" % len(c)
        if c:
            out += c + b"\r\n"
    if trailers is not None:
        lines = "".join(f"{k}:{v}\n" for k, v in trailers)
        for k, v in trailers:
            out += f"{k}:{v}\r\n".encode()
        if signer:
            out += f"x-amz-trailer-signature:{signer.trailer_signature(amz_date, prev, lines)}\r\n".encode()
    out += b"\r\n"
    return bytes(out)


# --------------------------------------------------------------------------
# raw HTTP
# --------------------------------------------------------------------------

@dataclass
class RawResponse:
    status: int
    headers: dict = field(default_factory=dict)
    body: bytes = b""

    @property
    def code(self):
        return xml_error_code(self.body)


def s3_path(bucket: str | None = None, key: str | None = None) -> str:
    p = "/"
    if bucket:
        p += uri_encode(bucket, True)
        if key is not None:
            p += "/" + uri_encode(key, True)
    return p


def raw_request(host: str, port: int, method: str, path: str, *, query=None,
                headers: dict | None = None, body: bytes = b"", signer: Signer | None = None,
                payload_hash: str | None = None, timeout: float = 60,
                chunked_transfer: bool = False) -> RawResponse:
    """Send one HTTP/1.1 request and read the whole response.

    path: encoded path; query: list of (name, value). With a signer the request
    is SigV4-signed, by default over sha256(body). chunked_transfer sends the
    body with Transfer-Encoding: chunked and no Content-Length."""
    headers = dict(headers or {})
    headers.setdefault("host", f"{host}:{port}")
    if signer is not None:
        ph = payload_hash if payload_hash is not None else hashlib.sha256(body).hexdigest()
        headers, _ = signer.sign(method, path, query or [], headers, ph)
    qs = "&".join(f"{uri_encode(k, False)}={uri_encode(v, False)}" if v != "" else uri_encode(k, False)
                  for k, v in (query or []))
    url = path + ("?" + qs if qs else "")
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.putrequest(method, url, skip_host=True, skip_accept_encoding=True)
        for k, v in headers.items():
            conn.putheader(k, v)
        if chunked_transfer:
            conn.putheader("transfer-encoding", "chunked")
            conn.endheaders()
            for i in range(0, len(body), 16 * 1024):
                piece = body[i:i + 16 * 1024]
                conn.send(b"%x\r\n%s\r\n" % (len(piece), piece))
            conn.send(b"0\r\n\r\n")
        else:
            if "content-length" not in {k.lower() for k in headers} and (body or method in ("PUT", "POST")):
                conn.putheader("content-length", str(len(body)))
            conn.endheaders(body if body else None)
        r = conn.getresponse()
        data = r.read()
        return RawResponse(r.status, {k.lower(): v for k, v in r.getheaders()}, data)
    finally:
        conn.close()


def raw_socket_exchange(host: str, port: int, head: bytes, body_part: bytes,
                        timeout: float = 15) -> bytes:
    """Send head + body_part on a fresh TCP connection, half-close the write
    side, and return whatever the server answers (b'' when it just closes)."""
    s = socket.create_connection((host, port), timeout=timeout)
    try:
        s.sendall(head + body_part)
        s.shutdown(socket.SHUT_WR)
        got = bytearray()
        while True:
            try:
                b = s.recv(65536)
            except (socket.timeout, ConnectionResetError):
                break
            if not b:
                break
            got += b
        return bytes(got)
    finally:
        s.close()
