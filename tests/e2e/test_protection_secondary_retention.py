"""`backup-instance --secondary-retention follow`: retention's deletions at the primary (a
local directory) are repeated in the secondary destination (moto's S3); with `keep` the
secondary keeps its copy.

The PT1M policy with both rules kept three minutes: the agent's clock (`--now`) takes b1,
b2 and b3, each copied to S3; at minute 3 b1 expires and is deleted at both places (its
WAL, which only it needed, goes from S3 too). b3 is then restored from S3 to a point in
time after it (its WAL copied there with `copy --with-wal`), PostgreSQL started on it and
the rows compared. Back to `keep`, b2's expiry deletes it at the primary only.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from core.catalog.copies import read_copies
from core.catalog.reader import Catalog
from core.postgres.walnames import is_segment
from tests.e2e.test_protection_agent import Agent, pt1m_policy, require_password, set_up
from tests.support.catalog import SERVER, archived_server
from tests.support.cli import pgvault
from tests.support.destinations import TestDestination
from tests.support.pitr import new_target, restore, restored_server
from tests.support.postgres import Cluster, wait_for_recovery_end
from tests.support.wal import archived_names


def _ids(dest: TestDestination) -> list[str]:
    with dest.store() as store:
        return [b.backup_id for b in Catalog(store, SERVER).backups()]


def test_follow_deletes_the_expired_backup_in_the_secondary_too_keep_does_not(
    make_dest: Callable[..., TestDestination],
    cluster_factory: Callable[..., Cluster],
    pgvault_bin: str,
    tmp_path: Path,
) -> None:
    dest, s3 = make_dest("file"), make_dest("s3")
    s3_url = f"{s3.url}?AWS_ENDPOINT={s3.config.endpoint_url}"
    s3_cli = TestDestination("s3", s3_url, s3.bucket, s3.config, env=s3.env)
    server = archived_server(cluster_factory, dest, pgvault_bin)
    require_password(server.cluster)
    agent = Agent(dest, tmp_path / "state")
    agent.env.update(s3.env)  # the secondary's credentials: the agent's environment
    policy = pt1m_policy()
    policy["policyRules"][2]["lifecycles"][0]["deleteAfter"]["duration"] = "PT3M"
    set_up(agent, server.cluster, policy)
    update = ("backup-instance", "update", "--vault", "v1", "--name", SERVER)

    bad = pgvault(*update, "--secondary-retention", "other", env=agent.env)
    assert bad.returncode == 3, bad.stderr
    assert "'keep'" in bad.stderr and "'follow'" in bad.stderr
    alone = pgvault(*update, "--secondary-retention", "follow", env=agent.env)
    assert alone.returncode == 3, alone.stderr
    assert len(alone.stderr.strip().splitlines()) == 1 and "secondary destination" in alone.stderr
    shown = agent.run("backup-instance", "show", "--vault", "v1", "--name", SERVER)
    assert "secondaryRetention" not in shown  # nothing was stored

    updated = agent.run(
        *update, "--secondary-destination", s3_url, "--secondary-retention", "follow"
    )
    assert (updated["secondaryDestination"], updated["secondaryRetention"]) == (s3_url, "follow")
    [listed] = agent.run("backup-instance", "list", "--vault", "v1")
    assert listed["secondaryRetention"] == "follow"

    base = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=2)
    second = timedelta(seconds=10)
    backups = []
    for minute in (0, 1, 3):
        report = agent.once(base + timedelta(minutes=minute) + second)
        [run] = report["runs"]
        assert run["secondaryCopy"]["state"] == "succeeded", run
        backups.append(run["backupId"])
        server.write_wal(1)
    b1, b2, b3 = backups
    # minute 3: b1 (slot 0, PT3M) expired, at the primary and then in the secondary
    assert report["errors"] == []
    assert [(r["backupId"], r["action"], r["store"], r["result"]) for r in report["retention"]] == [
        (b1, "delete", "VaultStore", "done"),
        (b1, "delete", s3_url, "done"),
    ]
    assert _ids(dest) == [b2, b3]
    assert _ids(s3) == [b2, b3]
    with s3.store() as store:  # the WAL only b1 needed went from S3 too
        begin = Catalog(store, SERVER).get(b2).begin_wal or ""
        segments = {n for n in archived_names(store, SERVER) if is_segment(n)}
    assert segments and min(segments) >= begin, (sorted(segments), begin)
    with dest.store() as store:
        assert sorted(read_copies(store, SERVER)) == [b2, b3]
    assert agent.job_kinds().count("delete") == 2

    # b3 restored from the secondary to a point in time after it
    cluster = server.cluster
    cluster.sql("create table probe as select g as id from generate_series(1, 500) g")
    time.sleep(0.3)
    target_time = cluster.one("select clock_timestamp()::text")
    time.sleep(0.3)
    cluster.sql("insert into probe select g from generate_series(501, 900) g")
    server.write_wal(1)
    copied = pgvault("copy", dest.url, SERVER, b3, "--to", s3_url, "--with-wal", env=agent.env)
    assert copied.returncode == 0, copied.stderr
    target = new_target()
    try:
        restore(s3_cli, target, b3, "--target-time", target_time)
        with restored_server(target, cluster.bindir) as restored:
            wait_for_recovery_end(restored)
            assert restored.one("select count(*) from probe") == 500
    finally:
        target.drop()

    # keep: b2 (slot 1, PT3M) expires at minute 4 and stays in the secondary
    kept = agent.run(*update, "--secondary-retention", "keep")
    assert kept["secondaryRetention"] == "keep"
    report = agent.once(base + timedelta(minutes=4) + second)
    assert report["errors"] == []
    assert [(r["backupId"], r["store"], r["result"]) for r in report["retention"]] == [
        (b2, "VaultStore", "done")
    ]
    b4 = report["runs"][0]["backupId"]
    assert _ids(dest) == [b3, b4]
    assert _ids(s3) == [b2, b3, b4]

    # no secondary destination: nothing left to follow
    dropped = agent.run(*update, "--no-secondary-destination")
    assert "secondaryDestination" not in dropped and "secondaryRetention" not in dropped
    listed_json = json.dumps(agent.run("backup-instance", "list", "--vault", "v1"))
    assert "secondaryRetention" not in listed_json
