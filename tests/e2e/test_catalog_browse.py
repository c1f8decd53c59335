"""backup-list and backup-show on real backups: table and JSON, what barman-cloud prints for the
same catalog, and the tables a backup holds with their sizes at backup time."""

from __future__ import annotations

import json
from collections.abc import Callable

from tests.support.catalog import SERVER, archived_server, json_out
from tests.support.destinations import TestDestination
from tests.support.postgres import Cluster
from tests.support.restore import run_barman
from tests.support.sample import populate

PROBE_ROWS = 30_000
SUMMARY_KEYS = {
    "server",
    "backup_id",
    "name",
    "status",
    "kind",
    "begin_time",
    "end_time",
    "begin_wal",
    "end_wal",
    "begin_lsn",
    "end_lsn",
    "timeline",
    "stored_size",
    "data_size",
    "compression",
    "keep",
    "written_by",
    "error",
    "system_identifier",
    "postgres_version",
    "parent_backup_id",
    "chain",
    "method",
    "fallback",
    "abandoned",
    "deleting",
    "tier",
    "copies",
    "encrypted",
    "shown_status",
}
SHOW_KEYS = {
    "server",
    "backup_id",
    "summary",
    "backup_info",
    "manifest",
    "tablespaces",
    "archives",
    "objects",
    "wal",
    "databases",
    "tables",
    "warnings",
}
MANIFEST_KEYS = {
    "pgvault_version",
    "state",
    "started",
    "finished",
    "checksum_algorithm",
    "compression",
    "compression_level",
    "files",
    "data_bytes",
    "postgres_version_text",
    "data_checksums",
    "block_size",
    "segment_size",
    "excluded",
    "has_backup_manifest",
}


def test_two_backups_list_in_a_table_and_in_json_and_show_their_tables(
    make_dest: Callable[..., TestDestination],
    cluster_factory: Callable[..., Cluster],
    pgvault_bin: str,
) -> None:
    dest = make_dest("s3")
    server = archived_server(cluster_factory, dest, pgvault_bin, "--zstd")
    populate(server.cluster, rows=2000)
    first = server.backup("--zstd", "-n", "before-probe")
    server.cluster.sql("create table catalog_probe(id int primary key, label text, amount numeric)")
    server.cluster.sql(
        "insert into catalog_probe select g, md5(g::text) || md5((g*7)::text), g * 0.5 "
        f"from generate_series(1, {PROBE_ROWS}) g"
    )
    server.write_wal(1)
    second = server.backup("--gzip", "-S", "1MB")
    heap = server.cluster.one("select pg_relation_size('catalog_probe')")
    total_now = server.cluster.one("select pg_total_relation_size('catalog_probe')")

    # ---- backup-list, console: one line per backup, oldest first, every column filled.
    listed = server.run("backup-list")
    assert listed.returncode == 0, listed.stderr
    header, *rows = listed.stdout.splitlines()
    assert header.split()[:4] == ["Backup", "ID", "Name", "Status"]
    assert "Compression" in header and "Keep" in header and "Stored" in header
    assert header.split()[-2:] == ["Tier", "Copies"]
    assert [r.split()[0] for r in rows] == [first, second]
    first_row, second_row = (r.split() for r in rows)
    assert first_row[1:4] == ["before-probe", "DONE", "full"]
    assert second_row[1:4] == ["-", "DONE", "full"]
    info = server.info(second)
    assert info.begin_wal in second_row and info.end_wal in second_row
    assert first_row[-4:] == ["zstd", "-", "standard", "-"]
    assert second_row[-4:] == ["gzip", "-", "standard", "-"]

    # ---- JSON: barman-cloud-backup-list's shape, the same entries, plus pgvault's view.
    data = json_out(server.run("backup-list", "--format", "json"))
    entries = data["backups_list"]
    assert isinstance(entries, list) and [e["backup_id"] for e in entries] == [first, second]
    barman = json.loads(
        run_barman("backup-list", dest, "--format", "json", dest.url, SERVER).stdout
    )
    assert [{k: v for k, v in e.items() if k != "pgvault"} for e in entries] == barman[
        "backups_list"
    ]
    view = entries[1]["pgvault"]
    assert set(view) == SUMMARY_KEYS  # the documented shape (README)
    assert view["status"] == view["shown_status"] == "DONE" and view["kind"] == "full"
    assert view["keep"] is None and view["abandoned"] is None and view["deleting"] is False
    assert view["tier"] == "standard"
    assert view["compression"] == "gzip" and view["written_by"] == "pgvault"
    assert view["begin_wal"] == info.begin_wal and view["timeline"] == 1
    with dest.store() as store:
        stored = sum(o.size for o in store.list_objects(f"{SERVER}/base/{second}/"))
    assert view["stored_size"] == stored
    assert view["data_size"] == info.cluster_size and view["data_size"] > stored

    # ---- backup-show: the probe table is in the second backup only, with its size then.
    shown = json_out(server.run("backup-show", second, "--format", "json"))
    assert set(shown) == SHOW_KEYS and shown["summary"] == view
    assert set(shown["manifest"]) == MANIFEST_KEYS  # type: ignore[arg-type]
    probe = [t for t in shown["tables"] if t["name"] == "catalog_probe"]  # type: ignore[union-attr]
    assert len(probe) == 1 and probe[0]["database"] == "postgres"
    assert heap <= probe[0]["size"] <= total_now
    assert probe[0]["size"] > PROBE_ROWS * 70  # 30,000 rows of about 100 bytes
    names = {(t["database"], t["name"]) for t in shown["tables"]}  # type: ignore[union-attr]
    assert {("postgres", "accounts"), ("postgres", "blobs"), ("sales", "orders")} <= names
    assert {d["name"] for d in shown["databases"]} == {"postgres", "sales"}  # type: ignore[union-attr]
    before = json_out(server.run("backup-show", "before-probe", "--format", "json"))
    assert "catalog_probe" not in {t["name"] for t in before["tables"]}  # type: ignore[union-attr]
    assert shown["backup_info"] == barman["backups_list"][1]
    assert shown["wal"]["segments"] == [info.begin_wal]  # type: ignore[index]
    parts = shown["archives"][0]["parts"]  # type: ignore[index]
    assert len(parts) > 1 and parts[0]["filename"] == "data.tar.gz" and parts[0]["checksum"]
    assert [t["name"] for t in shown["tablespaces"]] == ["ts1", "ts2"]  # type: ignore[union-attr]

    console = server.run("backup-show", "latest")
    assert console.returncode == 0, console.stderr
    text = console.stdout
    assert f"Backup {second}:" in text and "catalog_probe" in text
    assert "data_0001.tar.gz" in text and "backup_manifest" in text
    assert "Tables (size at backup time" in text

    # ---- bad input and missing backups: one line, the seeds' codes, never a traceback.
    missing = server.run("backup-show", "20000101T000000")
    assert missing.returncode == 1 and "not found" in missing.stderr
    unknown = server.run("backup-show", "no-such-name")
    assert unknown.returncode == 1 and "no backup matches 'no-such-name'" in unknown.stderr
    bad = server.run("backup-list", "--format", "yaml")
    assert bad.returncode == 3 and "invalid choice" in bad.stderr
    policy = server.run("backup-delete", "-r", "REDUNDANCY x")
    assert policy.returncode == 3 and "REDUNDANCY x" in policy.stderr
    for result in (missing, unknown, bad, policy):
        assert "Traceback" not in result.stderr and len(result.stderr.splitlines()) == 1
