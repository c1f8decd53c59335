"""Backup, wal-archive (both paths), wal-restore and restore through a fault-injecting proxy.

Storms of 503 SlowDown, resets, lost answers, downloads cut half way and requests stalled
past --read-timeout: every job ends clean. A storm the retries ride out ends in success
(proved by restoring through the same storm and comparing the data); an outage longer than
the retries ends in the seeds' exit code with a message naming the object, and nothing
half-written is listed as restorable. No command waits past its timeouts: each runs under a
subprocess timeout far shorter than a hang would take.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator

import psycopg2
import pytest

from tests.support.destinations import TestDestination
from tests.support.emulators import Emulator
from tests.support.fault_proxy import (
    Bursts,
    Fault,
    FaultProxy,
    Plan,
    Request,
    Script,
    Step,
    through_proxy,
)
from tests.support.pitr import SERVER, new_target, restored_server
from tests.support.postgres import Cluster
from tests.support.sample import checksums, populate
from tests.support.wal import archive_command, pgvault_run, stop_pushers, wait_for

READ_TIMEOUT = "2"  # seconds; the proxy stalls a request for 4
STALL = 4.0
COMMAND_TIMEOUT = 420  # a hang fails the test here instead of blocking the suite
# Mostly quick faults; a stall costs a read timeout, so it is drawn less often.
STORM = (Fault.UNAVAILABLE, Fault.RESET, Fault.TRUNCATE) * 2 + (Fault.STALL,)
WRITE_STORM = (Fault.LOSE_ANSWER, Fault.RESET, Fault.LOSE_ANSWER, Fault.STALL)


@pytest.fixture
def proxied(
    emulators: dict[str, Emulator],
) -> Iterator[Callable[[TestDestination, Plan], tuple[FaultProxy, TestDestination]]]:
    proxies: list[FaultProxy] = []

    def make(dest: TestDestination, plan: Plan) -> tuple[FaultProxy, TestDestination]:
        proxy = FaultProxy(emulators[dest.provider].port, plan, stall=STALL).__enter__()
        proxies.append(proxy)
        via = through_proxy(dest, emulators, proxy)
        return proxy, via

    yield make
    for proxy in proxies:
        proxy.__exit__()


def _run(via: TestDestination, pgvault_bin: str, *args: str) -> tuple[int, str, str]:
    command, rest = args[0], args[1:]
    flags = [*via.cli_args, "--read-timeout", READ_TIMEOUT]
    done = pgvault_run(pgvault_bin, command, *flags, *rest, env=via.env, timeout=COMMAND_TIMEOUT)
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, done.stdout, done.stderr


def _listed(via: TestDestination, pgvault_bin: str) -> dict[str, str]:
    code, out, err = _run(via, pgvault_bin, "backup-list", "--format", "json", via.url, SERVER)
    assert code == 0, err
    return {b["backup_id"]: b["status"] for b in json.loads(out)["backups_list"]}


@pytest.mark.parametrize("provider", ["s3", "azure", "gcs"])
def test_a_storm_is_ridden_out_by_every_command(
    provider: str,
    make_dest: Callable[..., TestDestination],
    proxied: Callable[[TestDestination, Plan], tuple[FaultProxy, TestDestination]],
    pgvault_bin: str,
    cluster_factory: Callable[..., Cluster],
    scratch_dirs: Callable[[str], str],
) -> None:
    dest = make_dest(provider)
    storm = Bursts(
        seed=7, onset=0.15, calm=0.4, density=0.4, outage=2, faults=STORM, write_faults=WRITE_STORM
    )
    proxy, via = proxied(dest, storm)
    spool = scratch_dirs("pgvault-wire-spool-")
    fast = ["--async", "--spool-dir", spool, "--async-timeout", "120"]
    flags = [*via.cli_args, "--read-timeout", READ_TIMEOUT, "--zstd", *fast]
    source = cluster_factory(
        archive_command=archive_command(pgvault_bin, via.url, *flags), env=via.env
    )
    try:
        populate(source, rows=3000)
        code, out, err = _run(
            via,
            pgvault_bin,
            "backup",
            "--immediate-checkpoint",
            "-J",
            "2",
            "--min-chunk-size",
            "5MB",
            *source.conninfo_args(),
            via.url,
            SERVER,
        )
        assert code == 0, err
        backup_id = out.strip()
        expected = checksums(source)
        segment = source.one("select pg_walfile_name(pg_current_wal_lsn())")
        source.sql("select pg_switch_wal()")
        source.wait_archived(segment, timeout=COMMAND_TIMEOUT)
        # wal-restore on its own, then restore (whose restore_command is wal-restore too).
        fetched = os.path.join(scratch_dirs("pgvault-wire-fetch-"), "segment")
        code, _, err = _run(via, pgvault_bin, "wal-restore", via.url, SERVER, segment, fetched)
        assert code == 0, err
        with (
            open(fetched, "rb") as fh,
            open(os.path.join(source.data, "pg_wal", segment), "rb") as pg,
        ):
            assert fh.read() == pg.read()
        target = new_target()
        code, _, err = _run(
            via,
            pgvault_bin,
            "restore",
            "-J",
            "2",
            *_relocated(target.base),
            via.url,
            SERVER,
            backup_id,
            target.data,
        )
        assert code == 0, err
        with restored_server(target, source.bindir, env=via.env) as server:
            _wait_promoted(server)
            assert checksums(server) == expected
    finally:
        stop_pushers(spool)
    # Requests from concurrent threads meet the seeded draws in no fixed order: which kinds
    # a run meets varies, but the opening outage is always there and the storm is varied.
    seen = set(proxy.faults())
    assert Fault.UNAVAILABLE in seen and len(seen) >= 3 and seen & {Fault.STALL, Fault.TRUNCATE}


def _wait_promoted(server: Cluster) -> None:
    try:
        wait_for(lambda: server.one("select not pg_is_in_recovery()"), timeout=COMMAND_TIMEOUT)
    except (TimeoutError, psycopg2.Error) as exc:
        log = server.server_log()[-4000:]
        raise AssertionError(f"recovery did not end ({exc}):\n{log}") from None


def _relocated(base: str) -> list[str]:
    return ["--tablespace", f"ts1:{base}/ts1", "--tablespace", f"ts2:{base}/ts2"]


def _data_part_write(request: Request) -> bool:
    return request.method in ("PUT", "POST") and "/base/" in request.path and "data" in request.path


def _backup_info_write(request: Request) -> bool:
    return request.method in ("PUT", "POST") and request.path.endswith("/backup.info")


def _data_part_read(request: Request) -> bool:
    return request.method == "GET" and "/base/" in request.path and "/data" in request.path


def _wal_read(request: Request) -> bool:
    return request.method == "GET" and "/wals/" in request.path and "list-type" not in request.path


def test_an_outage_longer_than_the_retries_fails_cleanly_naming_the_object(
    make_dest: Callable[..., TestDestination],
    proxied: Callable[[TestDestination, Plan], tuple[FaultProxy, TestDestination]],
    pgvault_bin: str,
    cluster_factory: Callable[..., Cluster],
    scratch_dirs: Callable[[str], str],
) -> None:
    dest = make_dest("s3")
    source = cluster_factory(
        archive_command=archive_command(pgvault_bin, dest.url, *dest.cli_args), env=dest.env
    )
    source.sql("create table t as select g from generate_series(1, 10000) g")
    # Backup: every data part write fails, on and on. The backup failed (exit 1, as
    # barman-cloud-backup's) naming the part; it is FAILED, never listed as restorable.
    _, down = proxied(dest, Script([Step(_data_part_write, Fault.UNAVAILABLE, 10_000)]))
    code, _, err = _run(
        down,
        pgvault_bin,
        "backup",
        "--immediate-checkpoint",
        *source.conninfo_args(),
        down.url,
        SERVER,
    )
    assert code == 1 and "/data.tar" in err, err
    assert list(_listed(dest, pgvault_bin).values()) == ["FAILED"]
    # The store lost once PostgreSQL is in backup mode: the failure names that step, not
    # the checkpoint it waited for before.
    first, rest = Step(_backup_info_write, Fault.PASS), Step(_backup_info_write, Fault.RESET, 100)
    _, lost = proxied(dest, Script([first, rest]))
    code, _, err = _run(lost, pgvault_bin, "backup", *source.conninfo_args(), lost.url, SERVER)
    assert code == 1 and "failure recording the start (" in err, err
    assert "checkpoint (" not in err, err
    # A good backup, then a restore and a wal-restore whose reads all fail.
    code, out, err = _run(
        dest,
        pgvault_bin,
        "backup",
        "--immediate-checkpoint",
        *source.conninfo_args(),
        dest.url,
        SERVER,
    )
    assert code == 0, err
    backup_id = out.strip()
    _, cut = proxied(dest, Script([Step(_data_part_read, Fault.TRUNCATE, 10_000)]))
    target = new_target()
    code, _, err = _run(cut, pgvault_bin, "restore", cut.url, SERVER, backup_id, target.data)
    assert code == 2 and f"{backup_id}/data" in err, err
    assert not os.path.exists(target.data) or os.listdir(target.data) == []
    segment = source.one("select pg_walfile_name(pg_current_wal_lsn())")
    source.sql("select pg_switch_wal()")
    source.wait_archived(segment, timeout=COMMAND_TIMEOUT)
    _, stalled = proxied(dest, Script([Step(_wal_read, Fault.STALL, 10_000)]))
    fetched = os.path.join(scratch_dirs("pgvault-wire-fetch-"), "segment")
    code, _, err = _run(stalled, pgvault_bin, "wal-restore", stalled.url, SERVER, segment, fetched)
    assert code == 2 and segment in err, err
    assert not os.path.exists(fetched)
