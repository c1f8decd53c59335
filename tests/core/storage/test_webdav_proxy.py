"""A WebDAV store honours HTTP_PROXY, HTTPS_PROXY and NO_PROXY as urllib and requests do.

The S3, Azure and GCS SDKs go through the proxy the environment names; the WebDAV store
connected straight to the server, so an operator behind a proxy could not reach it. Against
nginx (dav, dav-ext) through a forward proxy of the test's own, both on 127.0.0.1: plain
http as absolute-form requests, https in a CONNECT tunnel (the server's certificate still
checked), the proxy's basic credentials sent and never shown, NO_PROXY's hosts reached
directly, and a proxy that refuses or is not there named in one error (exit 2).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from core.errors import CloudConnectionError
from core.storage import ObjectStore, StoreConfig, open_store
from core.storage.retry import RetryPolicy
from core.urls import parse_location
from tests.support.emulators import free_port
from tests.support.forward_proxy import ForwardProxy
from tests.support.webdav_server import DavServer, start_nginx_dav

PROXY_USER = "proxyuser"
PROXY_PASSWORD = "proxy-Secret-51c7"
VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "REQUEST_METHOD")
ONE_TRY = StoreConfig(retry=RetryPolicy(attempts=1))


@pytest.fixture(scope="module")
def dav() -> Iterator[DavServer]:
    server = start_nginx_dav()
    yield server
    server.stop()


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No proxy variable but the test's own (either case)."""
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    return monkeypatch


def _collection(dav: DavServer) -> str:
    name = f"proxied-{uuid.uuid4().hex[:8]}"
    (dav.root / name).mkdir()
    return name


def _round_trip(store: ObjectStore) -> None:
    """A small PUT, a streamed chunked PUT, a listing and both read back."""
    store.put_bytes("small/one", b"one object")
    big = bytes(range(256)) * 12_000  # 3 MiB in 1 MiB parts: the chunked upload
    with store.open_writer("big/two", chunk_size=1 << 20) as writer:
        for at in range(0, len(big), 700_000):
            writer.write(big[at : at + 700_000])
    assert store.get_bytes("small/one") == b"one object"
    assert store.get_bytes("big/two") == big
    assert [o.key for o in store.list_objects("")] == ["big/two", "small/one"]


def test_plain_http_goes_through_http_proxy(
    dav: DavServer, environment: pytest.MonkeyPatch
) -> None:
    origin = f"http://127.0.0.1:{dav.port}"
    with ForwardProxy() as proxy:
        environment.setenv("HTTP_PROXY", proxy.url())
        environment.setenv("NO_PROXY", "example.com,.internal")  # not this host
        url = f"dav://127.0.0.1:{dav.port}/{_collection(dav)}/pfx"
        with open_store(parse_location(url), StoreConfig()) as store:
            _round_trip(store)
    methods = {line.split(" ", 1)[0] for line in proxy.seen}
    assert {"MKCOL", "PUT", "GET"} <= methods, proxy.seen
    assert all(line.split(" ", 1)[1].startswith(f"{origin}/") for line in proxy.seen)


def test_https_goes_through_a_connect_tunnel_with_the_proxys_credentials(
    dav: DavServer, environment: pytest.MonkeyPatch
) -> None:
    environment.setenv("REQUESTS_CA_BUNDLE", dav.ca_file)
    url = f"davs://127.0.0.1:{dav.tls_port}/{_collection(dav)}/pfx"
    with ForwardProxy(PROXY_USER, PROXY_PASSWORD) as proxy:
        environment.setenv("https_proxy", proxy.url(PROXY_USER, PROXY_PASSWORD))
        environment.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # for http only: unused
        with open_store(parse_location(url), StoreConfig()) as store:
            _round_trip(store)
        assert proxy.seen and set(proxy.seen) == {f"CONNECT 127.0.0.1:{dav.tls_port}"}
        assert len(proxy.authorizations) == len(proxy.seen)

        # Refused credentials: the proxy's 407, exit 2, one line without the password.
        environment.setenv("https_proxy", proxy.url(PROXY_USER, "wrong-Secret-0a9e"))
        with (
            open_store(parse_location(url), ONE_TRY) as store,
            pytest.raises(CloudConnectionError) as refused,
        ):
            store.get_bytes("small/one")
    message = str(refused.value)
    assert "407" in message and f"127.0.0.1:{proxy.port} (from https_proxy)" in message, message
    assert "wrong-Secret" not in message and "\n" not in message


def test_no_proxy_hosts_are_reached_directly(
    dav: DavServer, environment: pytest.MonkeyPatch
) -> None:
    collection = _collection(dav)
    with ForwardProxy() as proxy:
        environment.setenv("HTTP_PROXY", proxy.url())
        for no_proxy, host in (("127.0.0.1", "127.0.0.1"), ("example.com, localhost", "localhost")):
            environment.setenv("NO_PROXY", no_proxy)
            url = f"dav://{host}:{dav.port}/{collection}/{host}"
            with open_store(parse_location(url), StoreConfig()) as store:
                store.put_bytes("o", b"direct")
                assert store.get_bytes("o") == b"direct"
        assert proxy.seen == []


def test_a_proxy_that_is_not_there_is_named(
    dav: DavServer, environment: pytest.MonkeyPatch
) -> None:
    port = free_port()  # nothing listens there
    environment.setenv("HTTP_PROXY", f"127.0.0.1:{port}")
    url = f"dav://127.0.0.1:{dav.port}/{_collection(dav)}/pfx"
    with (
        open_store(parse_location(url), ONE_TRY) as store,
        pytest.raises(CloudConnectionError) as unreachable,
    ):
        store.get_bytes("o")
    message = str(unreachable.value)
    assert f"through the proxy http://127.0.0.1:{port} (from HTTP_PROXY)" in message, message
    assert "refused" in message.lower()
