"""The pg_dump and pg_restore to run: the server's own major version when installed.

pg_dump refuses a server newer than itself and pg_restore an archive newer than itself,
so a tool is chosen by major version: the wanted one, else the oldest newer one. Searched,
in order: `--pg-bindir`, `PGVAULT_PG_BINDIRS` (directories separated by ':'), the
distributions' places (/usr/lib/postgresql/<major>/bin, /usr/pgsql-<major>/bin), PATH.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
from dataclasses import dataclass

from core.errors import InputError, OperationFailed

ENV = "PGVAULT_PG_BINDIRS"
_VERSION_RE = re.compile(r"\(PostgreSQL\) (\d+)(?:\.(\d+))?")


@dataclass(frozen=True)
class Tool:
    path: str
    major: int
    version: str  # what --version printed, e.g. "pg_dump (PostgreSQL) 15.18"


def _candidates(name: str) -> list[str]:
    dirs = [d for d in os.environ.get(ENV, "").split(":") if d]
    dirs += sorted(glob.glob("/usr/lib/postgresql/*/bin")) + sorted(glob.glob("/usr/pgsql-*/bin"))
    paths = [os.path.join(d, name) for d in dirs]
    found = shutil.which(name)
    if found:
        paths.append(found)
    return [p for p in dict.fromkeys(paths) if os.access(p, os.X_OK)]


def probe(path: str) -> Tool | None:
    """The tool's major version, or None when it does not run."""
    try:
        out = subprocess.run(  # noqa: S603 - a PostgreSQL tool found on disk, no shell
            [path, "--version"], capture_output=True, text=True, timeout=30, check=False
        ).stdout
    except OSError:
        return None
    match = _VERSION_RE.search(out)
    return Tool(path, int(match[1]), out.strip()) if match else None


def find_tool(name: str, want: int, minimum: int, bindir: str | None = None) -> Tool:
    """`want`'s major if found, else the oldest major at least `minimum`."""
    if bindir is not None:
        return _from_bindir(name, minimum, bindir)
    tools = []
    for path in _candidates(name):
        tool = probe(path)
        if tool is not None and tool.major == want >= minimum:
            return tool  # the first exact one: probing the rest cost a process each
        if tool is not None:
            tools.append(tool)
    newer = sorted((t for t in tools if t.major >= minimum), key=lambda t: t.major)
    if newer:
        return newer[0]
    seen = ", ".join(f"{t.path} ({t.major})" for t in tools) or "none"
    raise OperationFailed(
        f"no {name} of PostgreSQL {minimum} or later found (found: {seen}); install the "
        f"PostgreSQL {want} client tools or name their directory with --pg-bindir"
    )


def _from_bindir(name: str, minimum: int, bindir: str) -> Tool:
    tool = probe(os.path.join(bindir, name))
    if tool is None:
        raise InputError(f"--pg-bindir {bindir} holds no runnable {name}")
    if tool.major < minimum:
        raise InputError(
            f"{tool.path} is PostgreSQL {tool.major}: this needs PostgreSQL {minimum} or later"
        )
    return tool


def psql_for(restore: Tool, bindir: str | None = None) -> Tool:
    """The psql that runs this pg_restore's script: its own directory's, else one of its
    major or later (an older psql does not know the meta-commands a newer script holds)."""
    tool = probe(os.path.join(os.path.dirname(restore.path), "psql"))
    if tool is not None and tool.major >= restore.major:
        return tool
    return find_tool("psql", restore.major, restore.major, bindir)
