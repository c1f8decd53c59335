"""S3 through the standard library (core.storage.s3_http): when it is used, how it signs,
and its errors; the shared contract runs it too (test_contract.py, "s3-light")."""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
import threading
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from core.errors import ContainerNotFound, EndpointUnreachable
from core.storage import PutOptions, StoreConfig, open_store
from core.storage.retry import RetryPolicy
from core.storage.s3_http import S3HttpStore
from core.storage.sigv4 import Endpoint, Keys, aws_endpoint, moved, plain_access, sign
from core.urls import parse_location
from tests.support.destinations import make_destination
from tests.support.emulators import Emulator, free_port

ENDPOINT = "http://127.0.0.1:9"


def _opened(url: str, config: StoreConfig) -> str:
    """Which client open_store(light=True) would use (without building boto3's)."""
    return "S3HttpStore" if plain_access(parse_location(url), config) else "S3Store"


@pytest.fixture
def keys_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    for name in ("AWS_PROFILE", "HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.usefixtures("keys_in_env")
def test_plain_keys_and_a_certain_address_use_the_light_client(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ip = StoreConfig(endpoint_url=ENDPOINT)
    assert _opened("s3://bucket/p", ip) == "S3HttpStore"
    assert _opened("s3://bucket/p", StoreConfig()) == "S3HttpStore"  # AWS, virtual host
    named = StoreConfig(endpoint_url="http://minio.example:9000", addressing_style="path")
    assert _opened("s3://bucket/p", named) == "S3HttpStore"
    # What only boto3's chains and rules know goes to boto3.
    assert _opened("s3://bucket/p", replace(ip, aws_profile="other")) == "S3Store"
    assert _opened("s3://bucket/p", replace(named, addressing_style=None)) == "S3Store"
    assert _opened("s3://my.dotted.bucket/p", StoreConfig()) == "S3Store"
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy:3128")
    assert _opened("s3://bucket/p", ip) == "S3Store"
    monkeypatch.delenv("HTTPS_PROXY")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    assert _opened("s3://bucket/p", ip) == "S3Store"  # keys from elsewhere: boto3's chain
    url_keys = "s3://bucket/p?AWS_ACCESS_KEY_ID=AK&AWS_SECRET_ACCESS_KEY=shh-url-secret"
    assert _opened(url_keys, ip) == "S3HttpStore"
    opened = open_store(parse_location(url_keys), ip, light=True)
    assert isinstance(opened, S3HttpStore)
    assert "shh-url-secret" not in repr(opened.__dict__)


def test_signatures_are_botocores() -> None:
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    keys = Keys("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "session-token")
    endpoint = Endpoint("http", "127.0.0.1:5000", "/bucket", "eu-west-1")
    key = "pfx/pg1/wals/0000000100000000/00000001 odd+name~.history"
    headers = {
        "x-amz-tagging": "kind=wal&who=a%20b",
        "x-amz-meta-pgvault_sha256": "ab" * 32,
        "if-none-match": "*",
        "content-length": "5",
    }
    for method, path, query in (
        ("PUT", endpoint.path(key), {}),
        ("GET", endpoint.bucket_path(), {"list-type": "2", "prefix": "pfx/a b/", "max-keys": "2"}),
    ):
        theirs = AWSRequest(method=method, url=f"http://127.0.0.1:5000{path}", headers=headers)
        theirs.params = query
        signer = S3SigV4Auth(
            Credentials(keys.access_key, keys.secret_key, keys.token), "s3", "eu-west-1"
        )
        signer.add_auth(theirs)
        ours = sign(
            keys,
            endpoint,
            (method, path, query),
            headers,
            theirs.headers["X-Amz-Content-SHA256"],  # the empty body's, over http
            theirs.headers["X-Amz-Date"],
        )
        assert ours["authorization"] == theirs.headers["Authorization"]


def test_missing_bucket_and_unreachable_endpoint(emulators: dict[str, Emulator]) -> None:
    missing = replace(make_destination("s3", emulators, create=False), light=True)
    with missing.store() as store:
        assert isinstance(store, S3HttpStore)
        with pytest.raises(ContainerNotFound):
            store.check()
        with pytest.raises(ContainerNotFound):
            store.put_bytes("x", b"y", PutOptions(if_absent=True))
    fast = RetryPolicy(attempts=2, base=0.01, cap=0.02)
    dead = StoreConfig(endpoint_url=f"http://127.0.0.1:{free_port()}", retry=fast)
    with open_store(parse_location("s3://bucket/p"), dead, light=True) as store:
        assert isinstance(store, S3HttpStore)
        with pytest.raises(EndpointUnreachable):
            store.check()


def test_the_light_client_never_imports_boto3(emulators: dict[str, Emulator]) -> None:
    dest = replace(make_destination("s3", emulators), light=True)
    probe = (
        "import sys\n"
        "from core.storage import PutOptions, open_store\n"
        "from core.urls import parse_location\n"
        f"store = open_store(parse_location({dest.url!r}), {dest.config!r}, light=True)\n"
        "store.put_bytes('a/b', b'data', PutOptions(if_absent=True, tags=(('k', 'v'),)))\n"
        "assert store.get_bytes('a/b') == b'data'\n"
        "assert [o.key for o in store.list_objects('a/')] == ['a/b']\n"
        "assert store.head('a/b').size == 4\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore')))\n"
    )
    env_code = "from core.storage import StoreConfig\nfrom core.storage.retry import RetryPolicy\n"
    result = subprocess.run(
        [sys.executable, "-c", env_code + probe], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
    with dest.store() as store:
        assert store.get_tags("a/b") == {"k": "v"}  # tags went up with the PUT


def test_a_bucket_in_another_region_is_followed_there_on_aws_only() -> None:
    asked = aws_endpoint("bucket", "eu-west-1")
    assert asked.host == "bucket.s3.eu-west-1.amazonaws.com"
    there = moved(asked, "bucket", "us-west-2")
    assert there is not None and there.region == "us-west-2"
    assert there.host == "bucket.s3.us-west-2.amazonaws.com"
    assert moved(asked, "bucket", "eu-west-1") is None
    assert moved(asked, "bucket", None) is None
    local = Endpoint("http", "127.0.0.1:9000", "/bucket", "us-east-1")
    assert moved(local, "bucket", "eu-west-1") is None  # another store: no AWS redirect


class _Recorder(BaseHTTPRequestHandler):
    """Answers every PUT 200 and keeps its headers and body."""

    seen: ClassVar[list[tuple[dict[str, str], bytes]]] = []

    def do_PUT(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        self.seen.append(({k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.usefixtures("keys_in_env")
def test_a_put_is_signed_and_checked_with_one_sha256_given_or_computed_once() -> None:
    _Recorder.seen.clear()  # a rerun in the same process starts from no requests
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    config = StoreConfig(endpoint_url=f"http://127.0.0.1:{server.server_port}")
    try:
        with open_store(parse_location("s3://bucket/p"), config, light=True) as store:
            body = b"a WAL segment's bytes"
            digest = hashlib.sha256(body).digest()
            store.put_bytes("computed", body)
            # The caller's digest (the WAL's, read once) is trusted as given: never hashed again.
            given = hashlib.sha256(b"what the caller hashed").digest()
            store.put_bytes("given", body, sha256=given.hex())
    finally:
        server.shutdown()
    (computed, sent), (trusted, _) = _Recorder.seen
    assert sent == body
    assert computed["x-amz-content-sha256"] == digest.hex()
    assert computed["x-amz-checksum-sha256"] == base64.b64encode(digest).decode()
    assert "x-amz-checksum-crc32" not in computed
    assert trusted["x-amz-content-sha256"] == given.hex()
    assert trusted["x-amz-checksum-sha256"] == base64.b64encode(given).decode()
