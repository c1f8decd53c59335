"""The copy engine on real stores: a local catalog copied to moto's S3 and to Azurite.

Which objects a copy takes (each backup's WAL range, the whole range with --with-wal, the
parents of an incremental, history files, the key file), in which order (the object that
makes a backup exist last), that every byte arrives, that a rerun skips what arrived, that a
different object on the target is a conflict left untouched, and that an interrupted copy
lists no backup on the target and completes when run again.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from core.catalog.backup_info import FAILED, BackupInfo, serialize
from core.catalog.copies import read_copies
from core.catalog.layout import ServerLayout
from core.catalog.reader import Catalog
from core.copy.job import CopyRequest, public_request, run_copy, validate_request
from core.copy.plan import plan_copy
from core.copy.transfer import CopyConflict
from core.errors import Cancelled, InputError
from core.progress import NullReporter
from core.storage import PutOptions
from core.urls import parse_location
from tests.support.catalog import put_backup, put_wal
from tests.support.destinations import TestDestination

SERVER = "pg1"
LAYOUT = ServerLayout(SERVER)
WAL = [f"0000000100000000000000{n:02X}" for n in range(1, 10)]


def _catalog(dest: TestDestination) -> None:
    """b1 needs WAL 2..3, b2 (an incremental of b1) 5..6, b3 8..8; a FAILED b0; a logical."""
    put_backup(dest, "20260101T000000", FAILED, WAL[0], WAL[0])
    put_backup(dest, "20260102T000000", begin=WAL[1], end=WAL[2])
    put_backup(dest, "20260104T000000", begin=WAL[7], end=WAL[7])
    info = BackupInfo(
        backup_id="20260103T000000",
        status="DONE",
        begin_wal=WAL[4],
        end_wal=WAL[5],
        parent_backup_id="20260102T000000",
        xlog_segment_size=16 * 1024 * 1024,
    )
    with dest.store() as store:
        store.put_bytes(LAYOUT.backup_info(info.backup_id), serialize(info))
        store.put_bytes(LAYOUT.backup_file(info.backup_id, "data.tar"), b"i" * 5000)
        store.put_bytes(f"{SERVER}/logical/20260105T000000L/db/app/toc.dat", b"toc")
        store.put_bytes(f"{SERVER}/logical/20260105T000000L/logical.json", b"{}")
        store.put_bytes(f"{SERVER}/logical/20260106T000000L/db/app/toc.dat", b"unfinished")
        store.put_bytes(LAYOUT.wal("00000002.history"), b"1\t0/5000000\tno reason\n")
        # as wal-archive stores a segment: its checksum in the object's metadata
        meta = PutOptions(metadata=(("pgvault_sha256", "ab" * 32), ("pgvault_size", "9")))
        store.put_bytes(LAYOUT.wal(WAL[4]), b"segment 5", meta)
    put_wal(dest, [w for i, w in enumerate(WAL) if i != 4])


def _request(
    source: TestDestination, target: TestDestination, *ids: str, **kw: bool
) -> CopyRequest:
    return CopyRequest(
        location=parse_location(source.url),
        server=SERVER,
        target=parse_location(target.url),
        backups=ids,
        store_config=source.config,
        target_config=target.config,
        **kw,
    )


def _keys(dest: TestDestination) -> dict[str, bytes]:
    with dest.store() as store:
        return {o.key: store.get_bytes(o.key) for o in store.list_objects("")}


def test_an_incremental_takes_its_parent_and_each_backup_only_its_wal_range(
    make_dest: Callable[..., TestDestination],
) -> None:
    source = make_dest("file")
    _catalog(source)
    with source.store() as store:
        plan = plan_copy(store, SERVER, ("20260103T000000",), False, False)
        assert plan.physical == ("20260102T000000", "20260103T000000")
        wal = [i.key.rsplit("/", 1)[-1] for i in plan.items if "/wals/" in i.key]
        assert wal == [WAL[1], WAL[2], WAL[4], WAL[5], "00000002.history"]
        # WAL first; then each backup, its backup.info last of its objects
        keys = [i.key for i in plan.items]
        assert keys.index(LAYOUT.backup_info("20260102T000000")) > keys.index(
            LAYOUT.backup_file("20260102T000000", "data.tar")
        )
        assert all(
            keys.index(k) < keys.index(LAYOUT.backup_file("20260102T000000", "data.tar"))
            for k in keys
            if "/wals/" in k
        )
        assert [i.seals for i in plan.items if i.seals] == ["20260102T000000", "20260103T000000"]

        whole = plan_copy(store, SERVER, ("20260103T000000",), False, True)
        wal = [i.key.rsplit("/", 1)[-1] for i in whole.items if "/wals/" in i.key]
        assert wal == [*WAL[1:], "00000002.history"]  # from the parent's begin on

        everything = plan_copy(store, SERVER, (), True, False)
        assert everything.physical == ("20260102T000000", "20260103T000000", "20260104T000000")
        assert everything.logical == ("20260105T000000L",)  # the unfinished one is not
        assert everything.wal_files == 1 + len(WAL) - 1  # no WAL before the oldest DONE one

        with pytest.raises(InputError, match="FAILED"):
            plan_copy(store, SERVER, ("20260101T000000",), False, False)


@pytest.mark.parametrize(
    "pair", [("file", "s3"), ("file", "azure"), ("s3", "azure"), ("azure", "gcs"), ("gcs", "http")]
)
def test_a_copy_to_another_provider_holds_the_same_bytes_and_is_recorded_on_the_source(
    pair: tuple[str, str], make_dest: Callable[..., TestDestination]
) -> None:
    source, target = make_dest(pair[0]), make_dest(pair[1])
    _catalog(source)
    result = run_copy(_request(source, target, everything=True), NullReporter())
    assert result.copied == len(result.physical) * 2 + 2 + result.wal_files
    assert result.skipped == 0
    before = _keys(source)
    copied = _keys(target)
    for key, data in copied.items():
        assert before[key] == data, key
    assert LAYOUT.backup_info("20260101T000000") not in copied  # FAILED: not copied
    with target.store() as store:
        assert [b.backup_id for b in Catalog(store, SERVER).backups()] == list(result.physical)
        meta = store.head(LAYOUT.wal(WAL[4])).metadata_dict()
        assert meta["pgvault_sha256"] == "ab" * 32  # wal-restore checks what it fetches
    with source.store() as store:
        copies = read_copies(store, SERVER)
    assert set(copies) == {*result.physical, *result.logical}
    assert all(urls == (result.target,) for urls in copies.values())

    again = run_copy(_request(source, target, everything=True), NullReporter())
    assert (again.copied, again.skipped) == (0, result.copied)


def test_a_different_object_on_the_target_is_a_conflict_and_stays(
    make_dest: Callable[..., TestDestination],
) -> None:
    source, target = make_dest("file"), make_dest("s3")
    _catalog(source)
    key = LAYOUT.backup_file("20260102T000000", "data.tar")
    with target.store() as store:
        store.put_bytes(key, b"x" * 1024)  # same size, other bytes
    with pytest.raises(CopyConflict, match="not overwritten") as caught:
        run_copy(_request(source, target, "20260102T000000"), NullReporter())
    assert caught.value.exit_code == 1
    with target.store() as store:
        assert store.get_bytes(key) == b"x" * 1024
        assert not store.exists(LAYOUT.backup_info("20260102T000000"))


def test_a_wal_segment_sealed_anew_counts_as_the_same_by_its_recorded_checksum(
    make_dest: Callable[..., TestDestination],
) -> None:
    """The same WAL archived to both destinations (--secondary-destination) of an encrypted
    server is two different age files: same recorded SHA-256, so not a conflict."""
    source, target = make_dest("file"), make_dest("s3")
    _catalog(source)
    key = LAYOUT.wal(WAL[4])
    same = PutOptions(metadata=(("pgvault_sha256", "ab" * 32), ("pgvault_size", "9")))
    with target.store() as store:
        store.put_bytes(key, b"sealed anew", same)
    result = run_copy(_request(source, target, "20260103T000000"), NullReporter())
    assert result.skipped == 1
    with target.store() as store:
        assert store.get_bytes(key) == b"sealed anew"  # left as it was
        other = PutOptions(metadata=(("pgvault_sha256", "cd" * 32), ("pgvault_size", "9")))
        store.put_bytes(key, b"other wal!!", other)
        store.delete_many([LAYOUT.backup_info("20260103T000000")])
    with pytest.raises(CopyConflict, match=WAL[4]):
        run_copy(_request(source, target, "20260103T000000"), NullReporter())


class _CancelAfter(NullReporter):
    """Cancels the copy (as `jobs cancel` does) once `limit` bytes are through."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.done = 0

    def advance(self, nbytes: int = 0, files: int = 0) -> None:
        self.done += nbytes

    def checkpoint(self) -> None:
        if self.done >= self.limit:
            raise Cancelled("cancelled by the operator")


def test_an_interrupted_copy_lists_nothing_on_the_target_and_a_rerun_completes(
    make_dest: Callable[..., TestDestination],
) -> None:
    source, target = make_dest("file"), make_dest("azure")
    _catalog(source)
    with pytest.raises(Cancelled):
        run_copy(_request(source, target, "20260103T000000"), _CancelAfter(500))
    with target.store() as store:
        assert store.exists(LAYOUT.wal(WAL[1]))  # something arrived
        assert Catalog(store, SERVER).backups() == []  # but no backup is listed
    with source.store() as store:
        assert read_copies(store, SERVER) == {}
    result = run_copy(_request(source, target, "20260103T000000"), NullReporter())
    assert result.skipped > 0 and result.copied > 0
    with target.store() as store:
        listed = [b.backup_id for b in Catalog(store, SERVER).backups()]
    assert listed == ["20260102T000000", "20260103T000000"]


def test_bad_requests_and_no_secret_in_the_stored_request(
    make_dest: Callable[..., TestDestination],
) -> None:
    source = make_dest("file")
    with pytest.raises(InputError, match="--all"):
        validate_request(_request(source, source))
    with pytest.raises(InputError, match="target is its source"):
        validate_request(_request(source, source, "latest"))
    secret = "s3://b/p?AWS_ACCESS_KEY_ID=AKIA1&AWS_SECRET_ACCESS_KEY=topsecret-copy-key"
    request = CopyRequest(
        location=parse_location(source.url),
        server=SERVER,
        target=parse_location(secret),
        backups=("latest",),
    )
    assert "topsecret-copy-key" not in repr(public_request(request))
