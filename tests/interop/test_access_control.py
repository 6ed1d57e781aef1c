"""Who may do what, against the real server with real keys: accounts and
users made by `strata admin`, each a boto3 client of its own. Isolation
both ways between accounts, read-only and write-only users, a bucket
policy granting one prefix to another account, an explicit Deny over an
Allow, aws:SourceIp, public-read by ACL and by policy fetched with no
signature, the public access block turning them off, presigned expiry
limits, and users, keys and policies surviving a kill -9."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.error
import urllib.request

import pytest
from botocore.exceptions import ClientError

from conftest import make_boto3_client, unique_bucket_name


def admin(srv, *args, keys=None):
    """Runs `strata admin --json ...` against `srv` as `keys` (root by default)."""
    access, secret = keys or (srv.access_key, srv.secret_key)
    env = dict(os.environ, STRATA_ACCESS_KEY=access, STRATA_SECRET_KEY=secret)
    done = subprocess.run(
        [srv.binary, "admin", "--endpoint", srv.endpoint_url, "--json", *args],
        env=env, capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise RuntimeError(f"strata admin {' '.join(args)}: {done.stderr.strip()}")
    return json.loads(done.stdout) if done.stdout.strip() else None


def denials(srv):
    """strata_access_denied_total, all reasons together."""
    with urllib.request.urlopen(f"{srv.endpoint_url}/metrics", timeout=10) as r:
        text = r.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("strata_access_denied_total{"))


def client_for(srv, keys):
    return make_boto3_client(srv, access_key=keys["access_key"], secret_key=keys["secret_key"])


def denied(call, *args, **kwargs):
    with pytest.raises(ClientError) as e:
        call(*args, **kwargs)
    code = e.value.response["Error"]["Code"]
    assert code == "AccessDenied", e.value.response
    # Every denial names its request.
    assert e.value.response["ResponseMetadata"].get("RequestId"), e.value.response
    return e.value


def anonymous_get(srv, bucket, key):
    try:
        with urllib.request.urlopen(f"{srv.endpoint_url}/{bucket}/{key}", timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


@pytest.fixture(scope="module")
def tenants(server):
    """A second account with its own root, and users of the first."""
    suffix = unique_bucket_name("acct")
    other = admin(server, "account", "add", f"tenant-{suffix}")
    reader = admin(server, "user", "add", f"reader-{suffix}", "--policy", "readonly")
    writer = admin(server, "user", "add", f"writer-{suffix}", "--policy", "writeonly")
    nothing = admin(server, "user", "add", f"nothing-{suffix}")
    return {"other": other, "reader": reader, "writer": writer, "nothing": nothing,
            "reader_name": f"reader-{suffix}", "suffix": suffix}


def test_accounts_are_isolated_both_ways(server, s3, tenants, bucket):
    other = client_for(server, tenants["other"])
    s3.put_object(Bucket=bucket, Key="mine", Body=b"first account")
    denied(other.get_object, Bucket=bucket, Key="mine")
    denied(other.put_object, Bucket=bucket, Key="theirs", Body=b"x")
    denied(other.list_objects_v2, Bucket=bucket)
    theirs = unique_bucket_name("theirs")
    other.create_bucket(Bucket=theirs)
    try:
        other.put_object(Bucket=theirs, Key="k", Body=b"second account")
        # The first account's root owns nothing in the second account.
        denied(s3.get_object, Bucket=theirs, Key="k")
        names = [b["Name"] for b in other.list_buckets()["Buckets"]]
        assert names == [theirs]
        assert theirs not in [b["Name"] for b in s3.list_buckets()["Buckets"]]
        # Another account's bucket name is taken.
        with pytest.raises(ClientError) as e:
            s3.create_bucket(Bucket=theirs)
        assert e.value.response["Error"]["Code"] == "BucketAlreadyExists"
    finally:
        other.delete_object(Bucket=theirs, Key="k")
        other.delete_bucket(Bucket=theirs)
    # A tenant's root makes users of its own, but never another tenant.
    keys = (tenants["other"]["access_key"], tenants["other"]["secret_key"])
    with pytest.raises(RuntimeError, match="AccessDenied"):
        admin(server, "account", "add", f"nested-{tenants['suffix']}", keys=keys)


def test_read_only_and_write_only_users(server, s3, tenants, bucket):
    reader = client_for(server, tenants["reader"])
    writer = client_for(server, tenants["writer"])
    nothing = client_for(server, tenants["nothing"])
    s3.put_object(Bucket=bucket, Key="doc", Body=b"readable")
    assert reader.get_object(Bucket=bucket, Key="doc")["Body"].read() == b"readable"
    denied(reader.put_object, Bucket=bucket, Key="doc", Body=b"overwritten")
    denied(reader.delete_object, Bucket=bucket, Key="doc")
    writer.put_object(Bucket=bucket, Key="dropped", Body=b"from the writer")
    denied(writer.get_object, Bucket=bucket, Key="dropped")
    denied(nothing.get_object, Bucket=bucket, Key="doc")
    # A key that does not exist is refused the same way: a denial does not
    # tell whether the object is there.
    before = denials(server)
    missing = denied(nothing.get_object, Bucket=bucket, Key="no-such-doc")
    present = denied(nothing.get_object, Bucket=bucket, Key="doc")
    assert missing.response["Error"]["Message"] == present.response["Error"]["Message"]
    # Denials are counted by reason.
    assert denials(server) >= before + 2
    # Nothing refused changed anything.
    assert s3.get_object(Bucket=bucket, Key="doc")["Body"].read() == b"readable"
    assert s3.get_object(Bucket=bucket, Key="dropped")["Body"].read() == b"from the writer"


def test_bucket_policy_grants_a_prefix_to_another_account_and_deny_wins(server, s3, tenants, bucket):
    other = client_for(server, tenants["other"])
    account = tenants["other"]["account_id"]
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
             "Action": ["s3:GetObject", "s3:PutObject"],
             "Resource": f"arn:aws:s3:::{bucket}/shared/*"},
            {"Effect": "Deny", "Principal": "*", "Action": "s3:GetObject",
             "Resource": f"arn:aws:s3:::{bucket}/shared/secret*"},
        ],
    }
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
    assert json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"]) == policy
    s3.put_object(Bucket=bucket, Key="shared/a", Body=b"shared")
    s3.put_object(Bucket=bucket, Key="shared/secret-1", Body=b"denied to all")
    s3.put_object(Bucket=bucket, Key="private", Body=b"not shared")
    assert other.get_object(Bucket=bucket, Key="shared/a")["Body"].read() == b"shared"
    other.put_object(Bucket=bucket, Key="shared/b", Body=b"from the tenant")
    denied(other.get_object, Bucket=bucket, Key="private")
    denied(other.get_object, Bucket=bucket, Key="shared/secret-1")
    # The explicit Deny binds the owner's root too...
    denied(s3.get_object, Bucket=bucket, Key="shared/secret-1")
    # ...which can still read and remove the policy: no lock-out.
    s3.get_bucket_policy(Bucket=bucket)
    s3.delete_bucket_policy(Bucket=bucket)
    assert s3.get_object(Bucket=bucket, Key="shared/secret-1")["Body"].read() == b"denied to all"
    denied(other.get_object, Bucket=bucket, Key="shared/a")


def test_objects_another_account_writes_are_its_own_and_404_needs_listing(server, s3, tenants, bucket):
    """ObjectWriter ownership, as on AWS: an object another account writes
    without granting the bucket owner stays unreadable to the bucket
    owner, who can still delete it; a missing key is NoSuchKey only to a
    caller who may list the bucket with that key as prefix."""
    other = client_for(server, tenants["other"])
    account = tenants["other"]["account_id"]
    principal = {"AWS": f"arn:aws:iam::{account}:root"}
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": principal, "Action": ["s3:PutObject", "s3:GetObject"],
             "Resource": f"arn:aws:s3:::{bucket}/drop/*"},
            {"Effect": "Allow", "Principal": principal, "Action": "s3:ListBucket",
             "Resource": f"arn:aws:s3:::{bucket}",
             "Condition": {"StringLike": {"s3:prefix": "drop/*"}}},
        ],
    }
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
    try:
        other.put_object(Bucket=bucket, Key="drop/kept", Body=b"the writer's")
        other.put_object(Bucket=bucket, Key="drop/shared", Body=b"granted back",
                         GrantFullControl="id=000000000000")
        denied(s3.get_object, Bucket=bucket, Key="drop/kept")
        denied(s3.get_object_acl, Bucket=bucket, Key="drop/kept")
        assert s3.get_object(Bucket=bucket, Key="drop/shared")["Body"].read() == b"granted back"
        assert other.get_object(Bucket=bucket, Key="drop/kept")["Body"].read() == b"the writer's"
        # The bucket owner keeps the right to remove what lands in its bucket.
        s3.delete_object(Bucket=bucket, Key="drop/kept")
        with pytest.raises(ClientError) as e:
            other.head_object(Bucket=bucket, Key="drop/kept")
        assert e.value.response["Error"]["Code"] == "404"
        with pytest.raises(ClientError) as e:
            other.head_object(Bucket=bucket, Key="private/none")
        assert e.value.response["Error"]["Code"] == "403"
    finally:
        s3.delete_bucket_policy(Bucket=bucket)
        s3.delete_object(Bucket=bucket, Key="drop/shared")


def test_a_policy_naming_an_unknown_condition_is_refused(s3, bucket):
    policy = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
        "Resource": f"arn:aws:s3:::{bucket}/*",
        "Condition": {"StringEquals": {"s3:no-such-key": "x"}}}]}
    with pytest.raises(ClientError) as e:
        s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
    assert e.value.response["Error"]["Code"] == "MalformedPolicy"
    with pytest.raises(ClientError) as e:
        s3.get_bucket_policy(Bucket=bucket)
    assert e.value.response["Error"]["Code"] == "NoSuchBucketPolicy"


def test_deny_by_source_ip(server, s3, tenants, bucket):
    reader = client_for(server, tenants["reader"])
    s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    policy = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Deny", "Principal": "*", "Action": "s3:GetObject",
        "Resource": f"arn:aws:s3:::{bucket}/*",
        "Condition": {"IpAddress": {"aws:SourceIp": "127.0.0.0/8"}}}]}
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
    denied(reader.get_object, Bucket=bucket, Key="k")
    policy["Statement"][0]["Condition"] = {"IpAddress": {"aws:SourceIp": "10.9.0.0/16"}}
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
    assert reader.get_object(Bucket=bucket, Key="k")["Body"].read() == b"v"


def test_public_read_without_a_signature_and_the_public_access_block(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="open.txt", Body=b"public bytes")
    assert anonymous_get(server, bucket, "open.txt")[0] == 403
    # By ACL.
    s3.put_bucket_acl(Bucket=bucket, ACL="public-read")
    s3.put_object(Bucket=bucket, Key="acl.txt", Body=b"acl bytes", ACL="public-read")
    assert anonymous_get(server, bucket, "acl.txt") == (200, b"acl bytes")
    grants = s3.get_object_acl(Bucket=bucket, Key="acl.txt")["Grants"]
    assert any(g["Grantee"].get("URI", "").endswith("AllUsers") and g["Permission"] == "READ"
               for g in grants)
    # By policy.
    policy = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",
        "Resource": f"arn:aws:s3:::{bucket}/*"}]}
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
    assert anonymous_get(server, bucket, "open.txt") == (200, b"public bytes")
    assert s3.get_bucket_policy_status(Bucket=bucket)["PolicyStatus"]["IsPublic"] is True
    # The block turns both off, and refuses new public grants.
    s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration={
        "BlockPublicAcls": True, "IgnorePublicAcls": True,
        "BlockPublicPolicy": True, "RestrictPublicBuckets": True})
    assert anonymous_get(server, bucket, "open.txt")[0] == 403
    assert anonymous_get(server, bucket, "acl.txt")[0] == 403
    denied(s3.put_object, Bucket=bucket, Key="more.txt", Body=b"x", ACL="public-read")
    denied(s3.put_bucket_policy, Bucket=bucket, Policy=json.dumps(policy))
    s3.delete_public_access_block(Bucket=bucket)
    s3.delete_bucket_policy(Bucket=bucket)


def test_presigned_expiry_limits(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="p", Body=b"presigned")
    url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "p"},
                                    ExpiresIn=600)
    with urllib.request.urlopen(url, timeout=10) as r:
        assert r.read() == b"presigned"
    too_long = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "p"},
                                         ExpiresIn=604801)
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(too_long, timeout=10)
    assert e.value.code in (400, 403)
    assert b"AuthorizationQueryParametersError" in e.value.read()


def test_custom_policies_disabled_users_and_rotated_keys(server, s3, tenants, bucket):
    suffix = tenants["suffix"]
    doc = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"],
        "Resource": f"arn:aws:s3:::{bucket}/home/${{aws:username}}/*"}]}
    path = os.path.join(server.workdir, "home.json")
    with open(path, "w") as f:
        json.dump(doc, f)
    admin(server, "policy", "add", f"home-{suffix}", path)
    assert f"home-{suffix}" in admin(server, "policy", "list")
    name = f"homer-{suffix}"
    keys = admin(server, "user", "add", name, "--policy", f"home-{suffix}")
    homer = client_for(server, keys)
    homer.put_object(Bucket=bucket, Key=f"home/{name}/notes", Body=b"mine")
    denied(homer.put_object, Bucket=bucket, Key="home/someone-else/notes", Body=b"x")
    # A second key, then the first rotated: the old secret stops working.
    second = admin(server, "key", "add", name)
    assert client_for(server, second).get_object(
        Bucket=bucket, Key=f"home/{name}/notes")["Body"].read() == b"mine"
    rotated = admin(server, "key", "rotate", name, keys["access_key"])
    assert rotated["access_key"] == keys["access_key"]
    with pytest.raises(ClientError) as e:
        homer.get_object(Bucket=bucket, Key=f"home/{name}/notes")
    assert e.value.response["Error"]["Code"] == "SignatureDoesNotMatch"
    assert client_for(server, rotated).get_object(
        Bucket=bucket, Key=f"home/{name}/notes")["Body"].read() == b"mine"
    # Disabled: no key of the user signs anything.
    admin(server, "user", "disable", name)
    with pytest.raises(ClientError) as e:
        client_for(server, second).get_object(Bucket=bucket, Key=f"home/{name}/notes")
    assert e.value.response["Error"]["Code"] == "InvalidAccessKeyId"
    users = {u["name"]: u for u in admin(server, "user", "list")}
    assert users[name]["enabled"] is False
    # Secrets appear nowhere but in the answers that made them.
    assert "secret_key" not in json.dumps(users)
    # A user without admin rights cannot manage users.
    with pytest.raises(RuntimeError, match="AccessDenied"):
        admin(server, "user", "add", f"sneaky-{suffix}",
              keys=(tenants["reader"]["access_key"], tenants["reader"]["secret_key"]))


def test_users_keys_and_policies_survive_a_crash(server_factory):
    srv = server_factory("iam-crash")
    s3 = make_boto3_client(srv)
    bucket = unique_bucket_name("crash")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=b"kept")
    active = admin(srv, "user", "add", "active", "--policy", "readonly")
    disabled = admin(srv, "user", "add", "disabled", "--policy", "readonly")
    admin(srv, "user", "disable", "disabled")
    policy = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Deny", "Principal": "*", "Action": "s3:DeleteObject",
        "Resource": f"arn:aws:s3:::{bucket}/*"}]}
    s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
    s3.put_bucket_acl(Bucket=bucket, ACL="authenticated-read")
    srv.restart(kill9=True)
    s3 = make_boto3_client(srv)
    assert client_for(srv, active).get_object(Bucket=bucket, Key="k")["Body"].read() == b"kept"
    with pytest.raises(ClientError) as e:
        client_for(srv, disabled).get_object(Bucket=bucket, Key="k")
    assert e.value.response["Error"]["Code"] == "InvalidAccessKeyId"
    assert json.loads(s3.get_bucket_policy(Bucket=bucket)["Policy"]) == policy
    denied(s3.delete_object, Bucket=bucket, Key="k")
    grants = s3.get_bucket_acl(Bucket=bucket)["Grants"]
    assert any(g["Grantee"].get("URI", "").endswith("AuthenticatedUsers") for g in grants)
    # The device holds no secret in the clear.
    srv.stop()
    secrets = [keys["secret_key"].encode() for keys in (active, disabled)]
    scanned = 0
    for block in written_regions(srv.data_path):
        scanned += len(block)
        for secret in secrets:
            assert secret not in block
    assert scanned > 0


def written_regions(path, piece=64 << 20):
    """The data regions of a sparse file, skipping its holes (SEEK_DATA)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        end = os.fstat(fd).st_size
        at = 0
        while at < end:
            try:
                start = os.lseek(fd, at, os.SEEK_DATA)
            except OSError:
                return
            stop = os.lseek(fd, start, os.SEEK_HOLE)
            while start < stop:
                # Overlap pieces so a secret across a boundary is seen.
                n = min(piece, stop - start)
                yield os.pread(fd, n + 64, start)
                start += n
            at = stop
    finally:
        os.close(fd)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def raw(method, url, headers=None, body=None):
    """One request as sent, answered as the server answers it (redirects
    are answers too: they are not followed)."""
    req = urllib.request.Request(url, method=method, headers=headers or {}, data=body)
    try:
        with urllib.request.build_opener(_NoRedirects).open(req, timeout=10) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def test_cors_preflight_and_headers_follow_the_bucket_rules(server, s3, bucket):
    url = f"{server.endpoint_url}/{bucket}/upload.txt"
    preflight = {"Origin": "http://app.example", "Access-Control-Request-Method": "PUT",
                 "Access-Control-Request-Headers": "x-amz-meta-note, content-type"}
    # No rules: the browser is told no.
    assert raw("OPTIONS", url, preflight)[0] == 403
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": [{
        "AllowedOrigins": ["http://app.example"], "AllowedMethods": ["PUT", "GET"],
        "AllowedHeaders": ["x-amz-*", "content-type"], "ExposeHeaders": ["ETag"],
        "MaxAgeSeconds": 60}]})
    assert s3.get_bucket_cors(Bucket=bucket)["CORSRules"][0]["MaxAgeSeconds"] == 60
    status, headers, _ = raw("OPTIONS", url, preflight)
    assert status == 200
    assert headers["Access-Control-Allow-Origin"] == "http://app.example"
    assert "PUT" in headers["Access-Control-Allow-Methods"]
    assert headers["Access-Control-Max-Age"] == "60"
    # Another origin, or a header no rule allows, is refused.
    assert raw("OPTIONS", url, {**preflight, "Origin": "http://evil.example"})[0] == 403
    assert raw("OPTIONS", url, {**preflight, "Access-Control-Request-Headers": "x-other"})[0] == 403
    # An ordinary answer to a matching origin carries the CORS headers.
    s3.put_object(Bucket=bucket, Key="upload.txt", Body=b"cors")
    presigned = s3.generate_presigned_url("get_object",
                                          Params={"Bucket": bucket, "Key": "upload.txt"})
    status, headers, body = raw("GET", presigned, {"Origin": "http://app.example"})
    assert (status, body) == (200, b"cors")
    assert headers["Access-Control-Allow-Origin"] == "http://app.example"
    assert headers["Access-Control-Expose-Headers"] == "ETag"
    s3.delete_bucket_cors(Bucket=bucket)
    assert raw("OPTIONS", url, preflight)[0] == 403


def post_form(url, fields, file_bytes):
    """A multipart/form-data POST as a browser's form sends it."""
    boundary = "----strata-form-boundary"
    parts = []
    for k, v in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
                     .encode())
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
                 f'filename="f.txt"\r\nContent-Type: text/plain\r\n\r\n'.encode())
    parts.append(file_bytes + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return raw("POST", url, {"Content-Type": f"multipart/form-data; boundary={boundary}"},
               b"".join(parts))


def test_post_object_enforces_its_policy(server, s3, bucket):
    post = s3.generate_presigned_post(
        bucket, "uploads/${filename}",
        Fields={"success_action_status": "201"},
        Conditions=[["starts-with", "$key", "uploads/"], ["content-length-range", 1, 100],
                    {"success_action_status": "201"}],
        ExpiresIn=300)
    url = post["url"]
    fields = dict(post["fields"], key="uploads/ok.txt")
    status, _, body = post_form(url, fields, b"from a form")
    assert status == 201, body
    assert s3.get_object(Bucket=bucket, Key="uploads/ok.txt")["Body"].read() == b"from a form"
    # Over the length range, and outside the key prefix: refused, nothing stored.
    status, _, _ = post_form(url, dict(post["fields"], key="uploads/big.txt"), b"x" * 200)
    assert status in (400, 403)
    status, _, _ = post_form(url, dict(post["fields"], key="elsewhere/k.txt"), b"small")
    assert status in (400, 403)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert keys == ["uploads/ok.txt"]


def test_post_object_tagging_field_filename_key_and_redirect(server, s3, bucket):
    # S3's form fields that s3s does not read itself: `tagging` (a Tagging
    # document) and `${filename}` in the key, checked by the policy after
    # the file's name is put in; the redirect carries the quoted ETag.
    tagging = ("<Tagging><TagSet><Tag><Key>team</Key><Value>a&amp;b</Value></Tag>"
               "<Tag><Key>tier</Key><Value>gold</Value></Tag></TagSet></Tagging>")
    redirect = "http://app.example/done"
    post = s3.generate_presigned_post(
        bucket, "uploads/${filename}",
        Fields={"tagging": tagging, "success_action_redirect": redirect},
        Conditions=[["starts-with", "$key", "uploads/f"], {"tagging": tagging},
                    {"success_action_redirect": redirect}],
        ExpiresIn=300)
    status, headers, body = post_form(post["url"], post["fields"], b"tagged by its form")
    assert status == 303, body
    stored = s3.head_object(Bucket=bucket, Key="uploads/f.txt")
    assert headers["Location"] == (f"{redirect}?bucket={bucket}&key=uploads%2Ff.txt"
                                   f"&etag=%22{stored['ETag'].strip(chr(34))}%22")
    tags = s3.get_object_tagging(Bucket=bucket, Key="uploads/f.txt")["TagSet"]
    assert sorted((t["Key"], t["Value"]) for t in tags) == [("team", "a&b"), ("tier", "gold")]
    # The policy sees the key with the file's name in it: a prefix the
    # name does not match is refused.
    post = s3.generate_presigned_post(bucket, "uploads/${filename}",
                                      Conditions=[["starts-with", "$key", "uploads/g"]],
                                      ExpiresIn=300)
    assert post_form(post["url"], post["fields"], b"refused")[0] == 403
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert keys == ["uploads/f.txt"]


def test_aws_bucket_defaults_turn_acls_off_and_block_public_access(server_factory):
    srv = server_factory("aws-defaults", extra_args=["--aws-bucket-defaults", "true"])
    s3 = make_boto3_client(srv)
    bucket = unique_bucket_name("awsdef")
    s3.create_bucket(Bucket=bucket)
    rules = s3.get_bucket_ownership_controls(Bucket=bucket)["OwnershipControls"]["Rules"]
    assert rules == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert all(block.values()) and len(block) == 4
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=bucket, Key="k", Body=b"x", ACL="public-read")
    assert e.value.response["Error"]["Code"] in ("AccessControlListNotSupported", "AccessDenied")
    s3.put_object(Bucket=bucket, Key="k", Body=b"private")
    assert anonymous_get(srv, bucket, "k")[0] == 403
    # An explicit choice at create still wins over the default.
    other = unique_bucket_name("awsdef")
    s3.create_bucket(Bucket=other, ObjectOwnership="ObjectWriter")
    rules = s3.get_bucket_ownership_controls(Bucket=other)["OwnershipControls"]["Rules"]
    assert rules == [{"ObjectOwnership": "ObjectWriter"}]


def test_rotating_the_root_secret_reseals_stored_secrets(server_factory):
    srv = server_factory("rotation")
    s3 = make_boto3_client(srv)
    bucket = unique_bucket_name("rotate")
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=b"sealed")
    user = admin(srv, "user", "add", "rotated", "--policy", "readonly")
    old_secret = srv.secret_key
    # Rotate: the new root secret, with the old one given once.
    srv.secret_key = "a-brand-new-root-secret-0123456789abcdef"
    srv.extra_env = {"STRATA_PREVIOUS_SECRET_KEY": old_secret}
    srv.restart(kill9=False)
    assert client_for(srv, user).get_object(Bucket=bucket, Key="k")["Body"].read() == b"sealed"
    # The old secret is no longer needed: the stored secret was sealed again.
    srv.extra_env = {}
    srv.restart(kill9=False)
    assert client_for(srv, user).get_object(Bucket=bucket, Key="k")["Body"].read() == b"sealed"
    # Under a root secret it was never sealed with, the key does not sign,
    # and the server still serves its root.
    srv.secret_key = "yet-another-root-secret-0123456789abcdefg"
    srv.restart(kill9=False)
    with pytest.raises(ClientError) as e:
        client_for(srv, user).get_object(Bucket=bucket, Key="k")
    assert e.value.response["Error"]["Code"] == "InvalidAccessKeyId"
    assert make_boto3_client(srv).get_object(Bucket=bucket, Key="k")["Body"].read() == b"sealed"
    # Given the right previous secret again, nothing was lost.
    srv.extra_env = {"STRATA_PREVIOUS_SECRET_KEY": "a-brand-new-root-secret-0123456789abcdef"}
    srv.restart(kill9=False)
    assert client_for(srv, user).get_object(Bucket=bucket, Key="k")["Body"].read() == b"sealed"
