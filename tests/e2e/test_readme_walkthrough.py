"""The README's walkthrough, run as written on a real PostgreSQL 15 cluster.

The marked shell block is taken from README.md, its variables set to this test's cluster and
directories (nothing else is changed), and run by bash as root with a `sudo -u` that is
`runuser`. The restored server, started by the block itself on the port `--port` gave it,
must hold the source's data.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.emulators import free_port
from tests.support.postgres import Cluster, as_postgres, debian_bindir, world_dir

README = Path(__file__).resolve().parents[2] / "README.md"
BLOCK = re.compile(r"<!-- walkthrough -->\s*```sh\n(.*?)```\s*<!-- /walkthrough -->", re.S)
ASSIGNMENT = re.compile(r"^([A-Z_]+)=(\S+)(\s+#.*)?$")
#: runs a command as another user the way sudo does: a fresh environment (no sudo here)
SUDO_SHIM = """\
sudo() {
  if [ "$1" = -u ]; then
    local user=$2; shift 2
    env -i PATH="$PATH" HOME="$WALKTHROUGH_HOME" runuser -u "$user" -- "$@"
  else
    "$@"
  fi
}
"""


def walkthrough_block() -> str:
    found = BLOCK.search(README.read_text())
    assert found, "README.md has no <!-- walkthrough --> shell block"
    return found.group(1)


def with_values(block: str, values: dict[str, str]) -> str:
    """The block with its leading VARIABLE=value lines set to `values` (each one must exist)."""
    seen = set()
    lines = []
    for line in block.splitlines():
        match = ASSIGNMENT.match(line)
        if match and match.group(1) in values:
            seen.add(match.group(1))
            line = f"{match.group(1)}={shlex.quote(values[match.group(1)])}"
        lines.append(line)
    assert seen == set(values), f"the README block does not set {set(values) - seen}"
    return "\n".join(lines) + "\n"


@pytest.fixture
def restored_server() -> Iterator[dict[str, str]]:
    """Where the walkthrough restores; the server it starts there is stopped afterwards."""
    base = world_dir("pgvault-walk-")
    where = {"RESTORED": os.path.join(base, "restored"), "HOME": os.path.join(base, "home")}
    as_postgres(["mkdir", where["HOME"]])
    yield where
    if os.path.exists(os.path.join(where["RESTORED"], "postmaster.pid")):
        as_postgres(
            [f"{debian_bindir(15)}/pg_ctl", "-D", where["RESTORED"], "-m", "immediate", "stop"],
            check=False,
        )
    subprocess.run(["rm", "-rf", base], check=False)


def test_the_readme_walkthrough_backs_up_and_restores_beside_the_source(
    cluster_factory: Callable[..., Cluster],
    pgvault_bin: str,
    restored_server: dict[str, str],
) -> None:
    source = cluster_factory(bindir=debian_bindir(15))
    source.sql("create table accounts (id int primary key, owner text)")
    source.sql("insert into accounts select g, 'owner ' || g from generate_series(1, 5000) g")
    restored_port = free_port()
    backups = os.path.join(world_dir("pgvault-walk-backups-"), "backups")
    values = {
        "PGVAULT": pgvault_bin,
        "BACKUPS": backups,
        "PGBIN": source.bindir,
        "PGDATA": source.data,
        "SOCKET": source.sock,
        "PORT": str(source.port),
        "RESTORED": restored_server["RESTORED"],
        "RESTORED_PORT": str(restored_port),
    }
    script = "set -euo pipefail\n" + SUDO_SHIM + with_values(walkthrough_block(), values)
    log = Path(restored_server["HOME"]).parent / "walkthrough.log"
    # Output to a file, not a pipe: the servers pg_ctl starts keep its stdout open.
    with open(log, "w") as out:
        result = subprocess.run(
            ["bash", "-c", script],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "WALKTHROUGH_HOME": restored_server["HOME"]},
            cwd="/tmp",
            timeout=600,
        )
    output = log.read_text()
    assert result.returncode == 0, output
    restored = Cluster(
        base=os.path.dirname(restored_server["RESTORED"]),
        data=restored_server["RESTORED"],
        sock=source.sock,
        port=restored_port,
        bindir=source.bindir,
    )
    assert restored.one("select pg_is_in_recovery()") is False
    assert restored.table_checksums() == source.table_checksums()
    assert restored.one("show port") == str(restored_port)
    assert source.one("select count(*) from accounts") == 5000
