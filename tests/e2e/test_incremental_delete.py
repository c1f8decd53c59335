"""backup-delete --chain on a real chain: the backup and every incremental built on it go,
newest first, after every one of them is checked; without --chain a parent is refused.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from core.catalog.backup_info import DONE, BackupInfo, serialize
from core.catalog.layout import ServerLayout
from core.catalog.reader import Catalog
from tests.e2e.test_incremental import Chain, _source
from tests.support.cli import pgvault
from tests.support.destinations import TestDestination, make_destination
from tests.support.emulators import Emulator
from tests.support.fault_proxy import Fault, FaultProxy, Request, Script, Step, through_proxy
from tests.support.pitr import SERVER
from tests.support.wal import pgvault_run


@pytest.fixture
def chain(pgvault_bin: str) -> Iterator[Chain]:
    dest = make_destination("file", {})
    cluster = _source(15, dest, pgvault_bin)
    made = Chain(cluster, dest, 15)
    try:
        made.backup()
        cluster.sql("update accounts set balance = 1 where id < 100")
        made.backup("--incremental")
        cluster.sql("update accounts set balance = 2 where id < 100")
        made.backup("--incremental")
        cluster.sql("update accounts set balance = 3 where id < 100")
        made.backup("--differential")
        yield made
    finally:
        cluster.drop()
        dest.drop()


def _delete(chain: Chain, *args: str) -> tuple[int, str, str]:
    result = pgvault(
        "backup-delete",
        *args,
        *chain.dest.cli_args,
        chain.dest.url,
        SERVER,
        env=chain.dest.env,
    )
    assert "Traceback" not in result.stderr
    return result.returncode, result.stdout, result.stderr


def _done(chain: Chain) -> list[str]:
    return [b.backup_id for b in chain.catalog().backups() if b.is_done]


def test_delete_chain_goes_newest_first_after_checking_every_link(chain: Chain) -> None:
    full, first, second, differential = chain.order
    # Without --chain: refused, naming the dependents and the way out.
    code, _, err = _delete(chain, "-b", first)
    assert code == 1 and second in err and "--chain" in err
    # A kept link refuses the whole run before anything is deleted.
    kept = pgvault(
        "backup-keep",
        *chain.dest.cli_args,
        chain.dest.url,
        SERVER,
        second,
        "--target",
        "standalone",
    )
    assert kept.returncode == 0, kept.stderr
    code, _, err = _delete(chain, "-b", first, "--chain")
    assert code == 1 and f"backup {second}" in err and "keep" in err
    assert _done(chain) == chain.order
    released = pgvault(
        "backup-keep", *chain.dest.cli_args, chain.dest.url, SERVER, second, "--release"
    )
    assert released.returncode == 0, released.stderr
    # A dry run names them, newest first, and deletes nothing.
    code, out, err = _delete(chain, "-b", first, "--chain", "--dry-run", "--format", "json")
    assert code == 0, err
    assert [d["backup_id"] for d in json.loads(out)["deleted"]] == [second, first]
    assert _done(chain) == chain.order
    # The middle of the chain and what builds on it; the full and the differential stay.
    code, out, err = _delete(chain, "-b", first, "--chain", "--format", "json")
    assert code == 0, err
    deleted = json.loads(out)["deleted"]
    assert [d["backup_id"] for d in deleted] == [second, first]
    assert "built on " + first in deleted[0]["why"]
    assert _done(chain) == [full, differential]
    # The whole chain from its full backup: the differential before the full.
    code, out, err = _delete(chain, "-b", full, "--chain", "--format", "json")
    assert code == 0, err
    assert [d["backup_id"] for d in json.loads(out)["deleted"]] == [differential, full]
    assert chain.catalog().backups() == []


def test_chain_is_bad_input_without_a_backup(chain: Chain) -> None:
    code, _, err = _delete(chain, "-r", "REDUNDANCY 1", "--chain")
    assert code == 3 and "--chain applies to -b only" in err
    assert _done(chain) == chain.order


def test_chain_is_bad_input_for_a_logical_backup(tmp_path: Path) -> None:
    result = pgvault(
        "backup-delete", "--logical", "-b", "latest", "--chain", f"file://{tmp_path}", SERVER
    )
    assert result.returncode == 3, result.stderr
    assert result.stderr.strip().endswith("--chain applies to physical backups only")
    assert len(result.stderr.strip().splitlines()) == 1


def _backup_info_write(request: Request) -> bool:
    return request.method in ("PUT", "POST") and request.path.endswith("/backup.info")


def test_a_policy_run_that_stops_half_way_leaves_no_incremental_without_its_parent(
    emulators: dict[str, Emulator], make_dest: Callable[..., TestDestination], pgvault_bin: str
) -> None:
    """A retention run deletes a chain's incrementals before the backups they build on: when
    it stops after its first deletion (here the store refuses every later write), what is
    left is still restorable, never an incremental listed DONE whose parent is gone (the old
    order, oldest first, deleted the full backup first and left both incrementals so)."""
    dest = make_dest("s3")
    layout = ServerLayout(SERVER)
    chain = [("20260101T000000", None), ("20260102T000000", "20260101T000000")]
    chain += [("20260103T000000", "20260102T000000"), ("20260104T000000", None)]
    with dest.store() as store:
        for backup_id, parent in chain:
            info = BackupInfo(backup_id=backup_id, status=DONE, parent_backup_id=parent)
            store.put_bytes(layout.backup_info(backup_id), serialize(info))
            store.put_bytes(layout.backup_file(backup_id, "data.tar"), b"\0" * 1024)
    first, rest = Step(_backup_info_write, Fault.PASS), Step(_backup_info_write, Fault.RESET, 200)
    plan = Script([first, rest])
    with FaultProxy(emulators["s3"].port, plan) as proxy:
        via = through_proxy(dest, emulators, proxy)
        stopped = pgvault_run(
            pgvault_bin, "backup-delete", *via.cli_args, "--read-timeout", "2",
            "-r", "REDUNDANCY 1", via.url, SERVER, env=via.env, timeout=300,
        )  # fmt: skip
    assert stopped.returncode != 0 and "Traceback" not in stopped.stderr, stopped.stderr
    with dest.store() as store:
        catalog = Catalog(store, SERVER)
        left = {b.backup_id: b for b in catalog.backups()}
    assert "20260104T000000" in left and len(left) == 3, sorted(left)
    for info in left.values():
        if info.status == DONE and info.parent_backup_id:
            assert info.parent_backup_id in left, (info.backup_id, sorted(left))
