"""backup-delete --chain on a real chain: the backup and every incremental built on it go,
newest first, after every one of them is checked; without --chain a parent is refused.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_incremental import Chain, _source
from tests.support.cli import pgvault
from tests.support.destinations import make_destination
from tests.support.pitr import SERVER


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
