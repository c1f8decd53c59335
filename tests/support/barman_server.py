"""A real Barman server for tests: the `barman` package (3.19.1, in .tools/barman) backing up a
fixture PostgreSQL cluster with backup_method=postgres (pg_basebackup), or rsync over ssh
(tests.support.sshd, given as an `ssh_command` option), run as postgres.

WAL reaches Barman through archive_command (cp into its incoming directory, then `barman
backup --wait` archives it), and reaches the pgvault destination through `pgvault
wal-archive` in the same archive_command, so that a restore can replay it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass

from tests.support.destinations import TestDestination
from tests.support.postgres import Cluster, as_postgres, make_cluster, world_dir
from tests.support.restore import barman_bin
from tests.support.wal import archive_command

SERVER = "pg1"


@dataclass
class BarmanServer:
    """barman.conf, Barman's home and the cluster it backs up."""

    base: str
    cluster: Cluster
    env: dict[str, str]

    @property
    def config(self) -> str:
        return os.path.join(self.base, "barman.conf")

    @property
    def home(self) -> str:
        return os.path.join(self.base, "home")

    def backup_dir(self, backup_id: str) -> str:
        return os.path.join(self.home, SERVER, "base", backup_id)

    def info_path(self, backup_id: str) -> str:
        return os.path.join(self.home, SERVER, "meta", f"{backup_id}-backup.info")

    def barman(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return as_postgres(
            [barman_bin("barman"), "-c", self.config, *args], env=self.env, check=check, timeout=300
        )

    def backup(self) -> tuple[str, str]:
        """`barman backup --wait`: the new backup's ID, and barman's output (hook logs)."""
        # Barman starts a backup only once its WAL archive holds a segment.
        switched = self.barman("switch-wal", "--force", "--archive", SERVER, check=False)
        assert switched.returncode == 0, (
            switched.stdout + switched.stderr + self.cluster.server_log()
        )
        result = self.barman("backup", "--wait", SERVER, check=False)
        output = result.stdout + result.stderr
        if result.returncode != 0:
            with open(os.path.join(self.base, "barman.log")) as fh:
                log = fh.read()[-3000:]
            raise AssertionError(f"barman backup failed:\n{output}\n{log}")
        found = re.search(r"base/(\d{8}T\d{6})", output)
        assert found, output
        return found.group(1), output

    def hook_env(
        self, backup_id: str, status: str = "DONE", hook: str = "backup_retry_script"
    ) -> dict[str, str]:
        """The environment Barman gives a post_backup(_retry)_script for this backup."""
        return {
            "BARMAN_HOOK": hook,
            "BARMAN_PHASE": "post",
            "BARMAN_SERVER": SERVER,
            "BARMAN_BACKUP_DIR": self.backup_dir(backup_id),
            "BARMAN_BACKUP_ID": backup_id,
            "BARMAN_BACKUP_INFO_PATH": self.info_path(backup_id),
            "BARMAN_STATUS": status,
            "BARMAN_RETRY": "1",
        }

    def drop(self) -> None:
        self.cluster.drop()
        shutil.rmtree(self.base, ignore_errors=True)


def make_barman_server(
    dest: TestDestination,
    pgvault_bin: str,
    hook_flags: tuple[str, ...] = (),
    hook: bool = True,
    options: tuple[str, ...] = (),
    backup_method: str = "postgres",
) -> BarmanServer:
    """A cluster archiving into Barman and `dest`; Barman's hook uploads to `dest`."""
    base = world_dir("pgvault-barman-")
    state = os.path.join(base, "state")
    incoming = os.path.join(base, "home", SERVER, "incoming")
    as_postgres(["mkdir", "-p", incoming, state])
    to_pgvault = archive_command(pgvault_bin, dest.url, *dest.cli_args)
    cluster = make_cluster(
        archive_command=f"{to_pgvault} && cp %p {incoming}/%f",
        env=dest.env,
        settings={"wal_keep_size": "256MB"},
    )
    hook_line = " ".join(
        [
            pgvault_bin,
            "--state-dir",
            state,
            "--batch",
            "backup",
            *hook_flags,
            *dest.cli_args,
            dest.url,
            "${BARMAN_SERVER}",
        ]
    )
    lines = [
        "[barman]",
        f"barman_home = {base}/home",
        "barman_user = postgres",
        f"log_file = {base}/barman.log",
        "log_level = INFO",
        "",
        f"[{SERVER}]",
        "description = pgvault hook test",
        f"conninfo = {cluster.dsn}",
        f"streaming_conninfo = host={cluster.sock} port={cluster.port} user=postgres",
        f"backup_method = {backup_method}",
        "archiver = on",
        f"path_prefix = {cluster.bindir}",
    ]
    lines += options  # more of the server's barman.conf settings, "key = value"
    if hook:
        lines.append(f"post_backup_retry_script = {hook_line}")
    config = os.path.join(base, "barman.conf")
    with open(config, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    os.chmod(config, 0o644)
    env = {**dest.env, "PGVAULT_STATE_DIR": state, "HOME": base}
    return BarmanServer(base=base, cluster=cluster, env=env)


def state_dir(server: BarmanServer) -> str:
    """The job store the hook (run by Barman as postgres) records its jobs in."""
    return os.path.join(server.base, "state")
