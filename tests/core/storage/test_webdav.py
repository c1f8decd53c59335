"""What only the WebDAV backend does: PROPFIND answers from other servers, odd names."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from core.errors import ObjectExists
from core.storage import PutOptions
from core.storage.webdav_xml import parse_multistatus
from core.urls import parse_location, public_url
from tests.support.destinations import TestDestination
from tests.support.jobs import wait_for

# As Apache mod_dav answers: absolute hrefs, ETags, and the props it lacks in a 404 propstat.
APACHE = b"""<?xml version="1.0" encoding="utf-8"?>
<D:multistatus xmlns:D="DAV:" xmlns:ns0="DAV:">
<D:response><D:href>https://dav.example.com/c/p/</D:href>
<D:propstat><D:prop><D:resourcetype><D:collection/></D:resourcetype>
<D:getlastmodified>Fri, 04 Dec 2026 13:04:11 GMT</D:getlastmodified></D:prop>
<D:status>HTTP/1.1 200 OK</D:status></D:propstat>
<D:propstat><D:prop><D:getcontentlength/></D:prop>
<D:status>HTTP/1.1 404 Not Found</D:status></D:propstat></D:response>
<D:response><D:href>https://dav.example.com/c/p/a%20b%25.tar</D:href>
<D:propstat><D:prop><D:resourcetype/><D:getcontentlength>42</D:getcontentlength>
<D:getetag>"2a-5e"</D:getetag></D:prop>
<D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response>
</D:multistatus>"""


def test_absolute_hrefs_escapes_and_404_propstats_are_read() -> None:
    folder, item = parse_multistatus(APACHE)
    assert (folder.path, folder.collection, folder.size) == ("/c/p/", True, 0)
    assert folder.modified is not None and folder.modified.year == 2026
    assert (item.name, item.size, item.etag, item.collection) == ("a b%.tar", 42, '"2a-5e"', False)


@pytest.mark.parametrize("provider", ["http", "wsgidav"])
def test_names_with_spaces_percent_signs_and_accents_round_trip(
    provider: str, make_dest: Callable[..., TestDestination]
) -> None:
    dest = make_dest(provider, prefix="pr%C3%A9%20fix%20%2541")  # 'pré fix %41'
    assert parse_location(dest.url).prefix == "pré fix %41"
    assert parse_location(public_url(parse_location(dest.url))) == parse_location(dest.url)
    keys = ["odd dir/a b%20c", "odd dir/ä+ö#?.bin", "top%2F"]
    with dest.store() as store:
        for key in keys:
            store.put_bytes(key, key.encode())
        assert sorted(o.key for o in store.list_objects()) == sorted(keys)
        assert [store.get_bytes(k) for k in keys] == [k.encode() for k in keys]
        store.delete_many(keys)
        assert list(store.list_objects()) == []


@pytest.mark.parametrize("provider", ["http", "wsgidav"])
def test_a_refused_write_if_absent_leaves_no_temporary_behind(
    provider: str, make_dest: Callable[..., TestDestination]
) -> None:
    dest = make_dest(provider)
    with dest.store() as store:
        store.put_bytes("lock", b"mine", PutOptions(if_absent=True))
        with pytest.raises(ObjectExists):
            store.put_bytes("lock", b"theirs", PutOptions(if_absent=True))
    on_disk = Path(dest.cleanup_dir or "")
    assert (on_disk / "pfx" / "lock").read_bytes() == b"mine"
    assert [p.name for p in on_disk.rglob("*") if p.is_file()] == ["lock"]


def _keepalives() -> set[str]:
    return {t.name for t in threading.enumerate() if t.name.startswith("dav-keepalive-")}


def test_an_uploads_keepalive_ends_with_it_or_with_its_store(
    make_dest: Callable[..., TestDestination], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A streaming upload sends keepalive bytes while it waits for its parts (here after
    0.2 s of silence: nginx reads them as leading zeros of the next chunk's size); the
    thread that sends them ends when the upload completes, is aborted, or its store closes
    with it unfinished, so that no abandoned request is held open for ever."""
    monkeypatch.setenv("PGVAULT_DAV_KEEPALIVE", "0.2")
    others = _keepalives()  # another test's, in this process: not this test's business
    dest = make_dest("http")
    data = bytes(range(256)) * 4096  # 1 MiB: two parts of 512 KiB
    with dest.store() as store:
        with store.open_writer("kept", chunk_size=512 << 10) as writer:
            writer.write(data[: 600 << 10])
            time.sleep(1.5)  # silent: about seven keepalive bytes
            writer.write(data[600 << 10 :])
        assert store.get_bytes("kept") == data
        wait_for(
            lambda: not _keepalives() - others, timeout=5, what="the completed upload's keepalive"
        )

        aborted = store.open_writer("aborted", chunk_size=512 << 10)
        aborted.write(data)
        assert _keepalives() - others
        aborted.abort()
        wait_for(
            lambda: not _keepalives() - others, timeout=5, what="the aborted upload's keepalive"
        )

        store.open_writer("dropped", chunk_size=512 << 10).write(data)
        assert _keepalives() - others
    wait_for(
        lambda: not _keepalives() - others, timeout=5, what="the closed store's uploads' keepalive"
    )
