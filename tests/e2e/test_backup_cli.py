"""The backup command's surface: exit codes, one-line errors, secrets, IDs that never collide."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest

from core.catalog.backup_info import DONE
from core.catalog.reader import Catalog
from tests.support.cli import PGVAULT, pgvault, spawn
from tests.support.destinations import TestDestination
from tests.support.postgres import Cluster


def _objects(dest: TestDestination) -> list[str]:
    with dest.store() as store:
        return [o.key for o in store.list_objects("")]


def _one_line_error(stderr: str) -> str:
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("pgvault backup: error: ")
    return lines[-1]


@pytest.mark.parametrize(
    ("flags", "env", "message"),
    [
        (["-n", "latest"], {}, "reserved word"),
        (["-n", "20260101T000000"], {}, "looks like a backup ID"),
        (["--snapshot-disk", "disk1", "--snapshot-instance", "vm", "-z"], {}, "snapshot backups"),
        (["--snapshot-disk", "disk1"], {}, "needs --snapshot-instance"),
        (["--snapshot-instance", "vm", "--snapshot-mount", "d"], {}, "DISK=PATH"),
        (["--aws-region", "us-east-1"], {}, "for snapshot backups"),
        (["--gcp-project", "p"], {}, "for snapshot backups"),
        (["--azure-resource-group", "rg"], {}, "for snapshot backups"),
        (
            ["--snapshot-instance", "vm", "--snapshot-disk", "d", "--azure-resource-group", "rg"],
            {},
            "both",
        ),
        (["--snapshot-instance", "vm", "--snapshot-disk", "d", "--gcp-zone", "z"], {}, "both"),
        ([], {"BARMAN_HOOK": "backup_script"}, "unsupported Barman hook script"),
        ([], {"BARMAN_HOOK": "backup_script", "BARMAN_PHASE": "post"}, "BARMAN_BACKUP_DIR"),
        (["-z", "--lz4"], {}, "not allowed with argument"),
        (["--keepalive-interval", "-1"], {}, "keepalive"),
        (["--tags", *[f"k{i},v" for i in range(11)]], {}, "at most 10 tags"),
        (["-S", "lots"], {}, "not a valid size"),
        (["-J", "0"], {}, "must be at least 1"),
    ],
)
def test_bad_input_exits_3_before_anything_is_written(
    make_dest: Callable[..., TestDestination],
    flags: list[str],
    env: dict[str, str],
    message: str,
) -> None:
    dest = make_dest("file")
    result = pgvault("backup", *flags, "-p", "1", dest.url, "pg", env=env)
    assert result.returncode == 3, result.stderr
    assert message in _one_line_error(result.stderr)
    assert not os.path.exists(dest.url.removeprefix("file://"))


def test_postgres_unreachable_exits_1_and_hides_the_password(
    make_dest: Callable[..., TestDestination],
) -> None:
    dest = make_dest("file")
    conninfo = "host=127.0.0.1 port=1 user=postgres password=Sup3rSecretPw connect_timeout=3"
    result = pgvault("backup", "-d", conninfo, dest.url, "pg")
    assert result.returncode == 1
    line = _one_line_error(result.stderr)
    assert "cannot connect to PostgreSQL" in line
    assert "Sup3rSecretPw" not in result.stderr + result.stdout
    assert _objects(dest) == []


def test_cloud_unreachable_exits_2_and_a_missing_bucket_exits_1(
    pg: Cluster, make_dest: Callable[..., TestDestination]
) -> None:
    dest = make_dest("s3")
    unreachable = pgvault(
        "backup",
        "--endpoint-url",
        "http://127.0.0.1:1",
        *pg.conninfo_args(),
        dest.url,
        "pg",
        env=dest.env,
    )
    assert unreachable.returncode == 2
    assert "cannot reach" in _one_line_error(unreachable.stderr)
    missing = make_dest("s3", create=False)
    result = pgvault(
        "backup", *missing.cli_args, *pg.conninfo_args(), missing.url, "pg", env=missing.env
    )
    assert result.returncode == 1
    assert "does not exist" in _one_line_error(result.stderr)


def test_a_data_directory_that_is_not_the_servers_is_refused(
    cluster_factory: Callable[..., Cluster], make_dest: Callable[..., TestDestination]
) -> None:
    """pgvault run where the server's data directory path holds another cluster (a remote
    -h, or the wrong host): simulated with another cluster's files bind-mounted over the
    path in a private mount namespace."""
    dest = make_dest("file")
    server, other = cluster_factory(), cluster_factory()
    command = " ".join(
        [
            f"mount --bind {other.data} {server.data} &&",
            PGVAULT,
            "--batch backup",
            *server.conninfo_args(),
            dest.url,
            "pg",
        ]
    )
    result = subprocess.run(
        ["unshare", "-m", "sh", "-c", command], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 1, result.stderr
    assert "belongs to another cluster" in _one_line_error(result.stderr)
    assert _objects(dest) == []


def test_backup_ids_never_collide(pg: Cluster, make_dest: Callable[..., TestDestination]) -> None:
    dest = make_dest("file")
    # The pg fixture does not archive WAL: --no-wal-check, as an operator keeping it elsewhere.
    args = ["backup", "--immediate-checkpoint", "--no-wal-check", *pg.conninfo_args()]
    args += [dest.url, "pg"]
    # IDs taken by something else for the next seconds: a leftover directory without
    # backup.info counts as taken too.
    now = datetime.now().replace(microsecond=0)
    taken = [(now + timedelta(seconds=s)).strftime("%Y%m%dT%H%M%S") for s in range(4)]
    with dest.store() as store:
        for backup_id in taken[:3]:
            store.put_bytes(f"pg/base/{backup_id}/backup.info", b"status=DONE\n")
        store.put_bytes(f"pg/base/{taken[3]}/data.tar", b"leftover")
    # Two backups started in the same second.
    first, second = spawn(*args), spawn(*args)
    out1, err1 = first.communicate(timeout=300)
    out2, err2 = second.communicate(timeout=300)
    assert first.returncode == 0 and second.returncode == 0, err1 + err2
    ids = {out1.strip(), out2.strip()}
    assert len(ids) == 2 and not ids & set(taken)
    with dest.store() as store:
        catalog = Catalog(store, "pg")
        assert all(catalog.get(i).status == DONE for i in ids)


def test_verbose_prints_a_summary_and_stdout_holds_only_the_id(
    pg: Cluster, make_dest: Callable[..., TestDestination]
) -> None:
    dest = make_dest("file")
    flags = ["-v", "--immediate-checkpoint", "--snappy", "--no-wal-check"]
    result = pgvault("backup", *flags, *pg.conninfo_args(), dest.url, "pg")
    assert result.returncode == 0, result.stderr
    backup_id = result.stdout.strip()
    assert result.stdout == backup_id + "\n"
    assert f"backup {backup_id}: " in result.stderr and "MiB read" in result.stderr
    assert "WAL archiving is off" in result.stderr  # the pg fixture does not archive


def test_tags_go_on_every_object_of_the_backup(
    pg: Cluster, make_dest: Callable[..., TestDestination]
) -> None:
    dest = make_dest("s3")
    result = pgvault(
        "backup",
        "--immediate-checkpoint",
        "--no-wal-check",  # the pg fixture does not archive WAL
        "--tags",
        "team,db",
        "env,prod",
        "-S",
        "1MB",
        *pg.conninfo_args(),
        *dest.cli_args,
        dest.url,
        "pg",
        env=dest.env,
    )
    assert result.returncode == 0, result.stderr
    with dest.store() as store:
        keys = [o.key for o in store.list_objects("pg/base/")]
        assert len([k for k in keys if "/data_" in k]) >= 2  # multipart-sized parts too
        for key in keys:
            assert store.get_tags(key) == {"team": "db", "env": "prod"}, key


def test_help_says_which_compressions_barman_cloud_restores() -> None:
    # barman-cloud-restore 3.19.1 skips .tar.zst ("Skipping unknown extension").
    text = " ".join(pgvault("backup", "--help").stdout.split())
    assert "barman-cloud-restore (3.19.1) cannot restore it" in text
    assert "(it reads plain, gzip, bzip2, snappy and lz4 backups)" in text
    assert "snappy-compress the backup (on every core)" in text
