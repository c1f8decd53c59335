"""The PGDATA and tablespace walk, with PostgreSQL's own base-backup exclusion rules.

Rules are applied per directory entry in the order of PostgreSQL's sendDir() (reference
§1): pgsql_tmp*, .DS_Store, excludeFiles, unlogged relations (all forks but init, when an
init fork exists) and temporary relations in database directories, global/pg_control
(sent last by the pipeline), excludeDirContents kept as empty directories, pg_wal as an
empty directory plus archive_status (and summaries on 17), pg_tblspc as an empty directory
(tablespaces are walked separately and their links rebuilt at restore), and any other
symlink or special file skipped with a warning. Sizes are fixed by this scan; files that
vanish before they are read are skipped by the reader.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import stat
from collections import Counter
from dataclasses import dataclass, field

from core.errors import OperationFailed
from core.postgres import versions
from core.postgres.connection import ServerFacts

log = logging.getLogger("pgvault.pgdata")

EXCLUDE_FILES = (
    "postgresql.auto.conf.tmp",
    "current_logfiles.tmp",
    "backup_label",
    "tablespace_map",
    "backup_manifest",
    "postmaster.pid",
    "postmaster.opts",
)
EXCLUDE_FILE_PREFIXES = ("pg_internal.init",)
EXCLUDE_DIR_CONTENTS = (
    "pg_stat_tmp",
    "pg_replslot",
    "pg_dynshmem",
    "pg_notify",
    "pg_serial",
    "pg_snapshots",
    "pg_subtrans",
)
PG_CONTROL = "global/pg_control"

_RELATION = re.compile(r"^(?P<node>\d+)(?:_(?P<fork>fsm|vm|init))?(?:\.\d+)?$")
_TEMP_RELATION = re.compile(r"^t\d+_\d+(?:_(?:fsm|vm|init))?(?:\.\d+)?$")


@dataclass(frozen=True, slots=True)
class Entry:
    """A directory or regular file to archive; `path` is relative to the walked root."""

    path: str
    is_dir: bool
    size: int
    mode: int
    uid: int
    gid: int
    mtime: float


@dataclass
class Tree:
    """One archive's worth of entries: PGDATA (prefix '') or a tablespace."""

    root: str  # absolute directory the paths are relative to
    manifest_prefix: str  # '' for PGDATA, 'pg_tblspc/<oid>/' for a tablespace
    entries: list[Entry] = field(default_factory=list)
    excluded: Counter[str] = field(default_factory=Counter)

    @property
    def size(self) -> int:
        return sum(e.size for e in self.entries)

    @property
    def files(self) -> int:
        return sum(1 for e in self.entries if not e.is_dir)

    def source(self, entry: Entry) -> str:
        return os.path.join(self.root, entry.path) if entry.path != "." else self.root


def _entry(path: str, st: os.stat_result, as_dir: bool = False) -> Entry:
    is_dir = as_dir or stat.S_ISDIR(st.st_mode)
    mode = stat.S_IMODE(st.st_mode)
    if as_dir and not stat.S_ISDIR(st.st_mode):
        mode = 0o700  # PostgreSQL writes a symlinked directory as a plain one
    return Entry(
        path=path,
        is_dir=is_dir,
        size=0 if is_dir else st.st_size,
        mode=mode,
        uid=st.st_uid,
        gid=st.st_gid,
        mtime=st.st_mtime,
    )


def _lstat(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise OperationFailed(f"cannot read {path}: {exc.strerror}") from None


def _scandir(path: str) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except FileNotFoundError:
        return []
    except OSError as exc:
        if exc.errno == errno.EACCES:
            raise OperationFailed(
                f"cannot read {path}: permission denied (run pgvault as the PostgreSQL "
                "OS user, or give it read access to the data directory)"
            ) from None
        raise OperationFailed(f"cannot read {path}: {exc.strerror}") from None


class _Walker:
    def __init__(self, tree: Tree, facts: ServerFacts, is_pgdata: bool, skip: set[str]):
        self.tree = tree
        self.facts = facts
        self.is_pgdata = is_pgdata
        self.skip = skip  # relative directories that are separate tablespaces
        self.version_dir = facts.tablespace_version_dir
        stats = facts.stats_temp_directory
        self.stats_temp: str | None = None
        if is_pgdata and stats:
            rel = os.path.relpath(os.path.join(tree.root, stats), tree.root)
            self.stats_temp = None if rel.startswith("..") else rel

    def _is_db_dir(self, rel: str) -> bool:
        parent, _, name = rel.rpartition("/")
        if not name.isdigit():
            return rel == "global" and self.facts.version_num >= versions.WAL_SUMMARIES
        if self.is_pgdata:
            return parent == "base"
        return parent == self.version_dir

    def walk(self, rel: str) -> None:
        directory = self.tree.root if rel == "." else os.path.join(self.tree.root, rel)
        names = _scandir(directory)
        db_dir = self._is_db_dir(rel)
        present = set(names) if db_dir else set()
        for name in names:
            child = name if rel == "." else f"{rel}/{name}"
            reason = self._exclusion(name, child, db_dir, present)
            if reason:
                self.tree.excluded[reason] += 1
                continue
            st = _lstat(os.path.join(directory, name))
            if st is None:
                self.tree.excluded["vanished"] += 1
                continue
            self._add(child, name, st)

    def _exclusion(self, name: str, child: str, db_dir: bool, present: set[str]) -> str | None:
        if name.startswith("pgsql_tmp"):
            return "temporary files"
        if name == ".DS_Store":
            return "other"
        if name in EXCLUDE_FILES or name.startswith(EXCLUDE_FILE_PREFIXES):
            return "excluded files"
        if db_dir:
            return _relation_exclusion(name, present)
        if self.is_pgdata and child == PG_CONTROL:
            return "pg_control"  # sent last, separately
        return None

    def _add(self, child: str, name: str, st: os.stat_result) -> None:
        entries = self.tree.entries
        mode = st.st_mode
        emptied = name in EXCLUDE_DIR_CONTENTS or child == self.stats_temp
        if emptied and (stat.S_ISDIR(mode) or stat.S_ISLNK(mode)):
            entries.append(_entry(child, st, as_dir=True))
            return
        if self.is_pgdata and child == "pg_wal":
            entries.append(_entry(child, st, as_dir=True))
            wal_dirs = ["archive_status"] + (
                ["summaries"] if self.facts.version_num >= versions.WAL_SUMMARIES else []
            )
            for sub in wal_dirs:
                entries.append(_entry(f"pg_wal/{sub}", st, as_dir=True))
            return
        if self.is_pgdata and child == "pg_tblspc":
            # Tablespaces have archives of their own; restore recreates these links.
            entries.append(_entry(child, st, as_dir=True))
            return
        if stat.S_ISDIR(mode):
            if child in self.skip:
                self.tree.excluded["tablespace inside PGDATA"] += 1
                return
            entries.append(_entry(child, st))
            self.walk(child)
        elif stat.S_ISREG(mode):
            entries.append(_entry(child, st))
        else:
            log.warning("skipping special file %s", os.path.join(self.tree.root, child))
            self.tree.excluded["special files"] += 1


def scan_pgdata(pgdata: str, facts: ServerFacts) -> Tree:
    """Every entry of PGDATA to archive, in archive order (pg_control excluded: sent last)."""
    root = os.path.realpath(pgdata)
    tree = Tree(root=root, manifest_prefix="")
    st = _lstat(root)
    if st is None or not stat.S_ISDIR(st.st_mode):
        raise OperationFailed(f"the data directory {pgdata} does not exist on this host")
    skip = set()
    for tablespace in facts.tablespaces:
        location = os.path.realpath(tablespace.location)
        if location.startswith(root + os.sep):
            skip.add(os.path.relpath(location, root))
    tree.entries.append(_entry(".", st))
    _Walker(tree, facts, is_pgdata=True, skip=skip).walk(".")
    return tree


def scan_tablespace(location: str, oid: int, facts: ServerFacts) -> Tree:
    """The tablespace's own version directory (PG_<major>_<catversion>) and what it holds."""
    root = os.path.realpath(location)
    tree = Tree(root=root, manifest_prefix=f"pg_tblspc/{oid}/")
    version_dir = facts.tablespace_version_dir
    st = _lstat(os.path.join(root, version_dir))
    if st is None or not stat.S_ISDIR(st.st_mode):
        raise OperationFailed(
            f"tablespace {oid} has no {version_dir} directory in {location} on this host"
        )
    tree.entries.append(_entry(version_dir, st))
    _Walker(tree, facts, is_pgdata=False, skip=set()).walk(version_dir)
    return tree


def wal_archive_busy(pgdata: str, name: str) -> bool:
    """PostgreSQL's XLogArchiveIsBusy(), read from pg_wal/archive_status on this host."""
    status = os.path.join(pgdata, "pg_wal", "archive_status", name)
    if os.path.exists(status + ".done"):
        return False
    if os.path.exists(status + ".ready"):
        return True
    if os.path.exists(status + ".done"):  # the archiver may have just finished
        return False
    # Removed by a checkpoint: it was archived, and that is why it has no status file.
    return os.path.exists(os.path.join(pgdata, "pg_wal", name))


def _relation_exclusion(name: str, present: set[str]) -> str | None:
    """Unlogged relations (all but their init fork) and temporary relations are not copied."""
    match = _RELATION.match(name)
    if match and match["fork"] != "init" and f"{match['node']}_init" in present:
        return "unlogged relations"
    if _TEMP_RELATION.match(name):
        return "temporary relations"
    return None
