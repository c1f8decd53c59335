"""A backup instance whose password is in the host's keyring (keyring:SERVICE/USERNAME): the
agent's backup reads it there at run time; it never reaches the vault, jobs or output."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tests.e2e.test_protection_agent import PASSWORD, Agent, require_password, set_up
from tests.support.catalog import SERVER, archived_server
from tests.support.destinations import TestDestination
from tests.support.postgres import Cluster

PLAINTEXT = "keyrings.alt.file.PlaintextKeyring"


def test_an_instance_reads_its_password_from_the_keyring(
    make_dest: Callable[..., TestDestination],
    cluster_factory: Callable[..., Cluster],
    pgvault_bin: str,
    tmp_path: Path,
) -> None:
    dest = make_dest("file")
    server = archived_server(cluster_factory, dest, pgvault_bin)
    require_password(server.cluster)
    agent = Agent(dest, tmp_path / "state")
    del agent.env["PGV_PASSWORD"]  # the keyring is the only place that holds it
    agent.env.update(PYTHON_KEYRING_BACKEND=PLAINTEXT, XDG_DATA_HOME=str(tmp_path / "data"))
    store = f"import keyring; keyring.set_password('pgvault', 'pg1', {PASSWORD!r})"
    subprocess.run([sys.executable, "-c", store], env=agent.env, check=True)
    instance = set_up(agent, server.cluster, secret=("keyring", "pgvault/pg1"))
    assert instance["datasourceAuthCredentials"]["secretStoreResource"]["uri"] == "pgvault/pg1"

    run = agent.run(
        "backup-instance", "adhoc-backup", "--vault", "v1", "--name", SERVER, "--rule-name", "Daily"
    )  # fmt: skip
    assert run["state"] == "succeeded", run
    assert agent.backups() == [run["backupId"]]
    with dest.store() as store:
        for item in store.list_objects(".pgvault/"):
            assert PASSWORD.encode() not in store.get_bytes(item.key), item.key
    assert PASSWORD.encode() not in (agent.state / "jobs.db").read_bytes()

    # a host whose keyring has no entry: the run fails naming the reference, not a password
    agent.env["XDG_DATA_HOME"] = str(tmp_path / "empty")
    failed = agent.run(
        "backup-instance", "adhoc-backup", "--vault", "v1", "--name", SERVER,
        "--rule-name", "Daily", code=1,
    )  # fmt: skip
    assert failed["state"] == "failed"
    assert "keyring:pgvault/pg1: the keyring holds no such password" in failed["error"]
    assert PASSWORD not in json.dumps(failed)
