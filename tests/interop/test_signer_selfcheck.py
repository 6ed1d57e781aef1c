"""Checks of the suite's own SigV4 helper (s3util.Signer), needing no server:
against botocore's signer and against the worked examples that the AWS S3
documentation publishes (header signing, chunked upload, chunked upload with a
signed trailer). Raw-request tests elsewhere rely on this signer being right."""

import hashlib

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

import s3util
from s3util import Signer

DOC_AK = "AKIAIOSFODNN7EXAMPLE"
DOC_SK = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
DOC_DATE = "20130524T000000Z"


def test_matches_aws_doc_get_object_example():
    signer = Signer(DOC_AK, DOC_SK)
    _, sig = signer.sign("GET", "/test.txt", [], {
        "host": "examplebucket.s3.amazonaws.com",
        "range": "bytes=0-9",
        "x-amz-content-sha256": s3util.EMPTY_SHA256,
    }, s3util.EMPTY_SHA256, amz_date=DOC_DATE)
    assert sig == "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"


def test_matches_aws_doc_chunked_upload_example():
    signer = Signer(DOC_AK, DOC_SK)
    headers, seed = signer.sign("PUT", "/examplebucket/chunkObject.txt", [], {
        "host": "s3.amazonaws.com",
        "content-encoding": "aws-chunked",
        "content-length": "66824",
        "x-amz-decoded-content-length": "66560",
        "x-amz-storage-class": "REDUCED_REDUNDANCY",
    }, s3util.STREAMING_SIGNED, amz_date=DOC_DATE)
    assert seed == "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
    body = s3util.aws_chunked_body(b"a" * 66560, 65536, signer=signer, amz_date=DOC_DATE,
                                   seed_signature=seed)
    assert len(body) == 66824
    assert b"10000;chunk-signature=ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648\r\n" in body
    assert b"400;chunk-signature=0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497\r\n" in body
    assert body.endswith(
        b"0;chunk-signature=b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9\r\n\r\n")


def test_matches_aws_doc_chunked_upload_with_trailer_example():
    signer = Signer(DOC_AK, DOC_SK)
    _, seed = signer.sign("PUT", "/examplebucket/chunkObject.txt", [], {
        "host": "s3.amazonaws.com",
        "content-encoding": "aws-chunked",
        "x-amz-decoded-content-length": "66560",
        "x-amz-storage-class": "REDUCED_REDUNDANCY",
        "x-amz-trailer": "x-amz-checksum-crc32c",
    }, s3util.STREAMING_SIGNED_TRAILER, amz_date=DOC_DATE)
    assert seed == "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e"
    crc = s3util.checksum_b64("CRC32C", b"a" * 66560)
    assert crc == "sOO8/Q=="
    body = s3util.aws_chunked_body(b"a" * 66560, 65536, signer=signer, amz_date=DOC_DATE,
                                   seed_signature=seed, trailers=[("x-amz-checksum-crc32c", crc)])
    assert b"b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2" in body
    assert b"1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7" in body
    assert body.endswith(
        b"0;chunk-signature=2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992\r\n"
        b"x-amz-checksum-crc32c:sOO8/Q==\r\n"
        b"x-amz-trailer-signature:d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435\r\n\r\n")


def test_matches_botocore_signer():
    body = b"<Delete><Object><Key>a b+c/\xc3\xa9</Key></Object></Delete>"
    url = "http://127.0.0.1:9000/bkt/some%20key/%C3%A9?delete=&prefix=a%2Fb&max-keys=5"
    req = AWSRequest(method="POST", url=url, data=body,
                     headers={"Content-Type": "application/xml", "X-Amz-Meta-Foo": "  a   b "})
    S3SigV4Auth(Credentials("AKID", "SECRET/KEY+1"), "s3", "us-east-1").add_auth(req)
    amz_date = req.headers["X-Amz-Date"]
    mine, _ = Signer("AKID", "SECRET/KEY+1").sign(
        "POST", "/bkt/some%20key/%C3%A9", [("delete", ""), ("prefix", "a/b"), ("max-keys", "5")],
        {"host": "127.0.0.1:9000", "content-type": "application/xml", "x-amz-meta-foo": "  a   b "},
        hashlib.sha256(body).hexdigest(), amz_date=amz_date)
    assert mine["authorization"] == req.headers["Authorization"]


def test_crc32c_known_value():
    # RFC 3720 B.4 test vector: 32 bytes of zeros -> 0x8a9136aa
    assert s3util.crc32c(b"\x00" * 32) == 0x8A9136AA
    assert s3util.crc32c(b"123456789") == 0xE3069283


def test_crc64nvme_known_value():
    # CRC-64/NVME catalogue check value
    assert s3util.crc64nvme(b"123456789") == 0xAE8B14860A799888


def test_etag_helpers():
    assert s3util.etag_single(b"") == '"d41d8cd98f00b204e9800998ecf8427e"'
    parts = [b"a" * 10, b"b" * 3]
    inner = hashlib.md5(hashlib.md5(parts[0]).digest() + hashlib.md5(parts[1]).digest()).hexdigest()
    assert s3util.etag_multipart(parts) == f'"{inner}-2"'
