"""Object keys of a catalog, exactly as barman-cloud lays them out (reference §2).

    <server>/base/<backup_id>/backup.info
    <server>/base/<backup_id>/data.tar[.gz|.bz2|.snappy|.lz4|.zst], data_0001.tar...
    <server>/base/<backup_id>/<tablespace oid>.tar..., <oid>_0001.tar...
    <server>/base/<backup_id>/annotations/keep
    <server>/base/<backup_id>/annotations/tier   (pgvault's: the backup is in the archive tier)
    <server>/base/<backup_id>/annotations/kind   (pgvault's: incremental or differential, clear)
    <server>/wals/<timeline+log>/<segment>[.gz|...]      (.partial, .backup alike)
    <server>/wals/<timeline>.history[.gz|...]
    <server>/pgvault.keys          (pgvault's encryption key file; archives then end in .age)

pgvault adds files barman-cloud ignores: `backup_manifest` (PostgreSQL's format) and
`pgvault.json` (per-file checksums, archive checksums, databases and tables) in the backup
directory. Keys are relative to the destination URL's prefix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from core.codecs import CODECS, Codec, codec_for_suffix
from core.errors import InputError
from core.names import check_name
from core.postgres.walnames import hash_dir, is_wal_name

BACKUP_ID_RE = re.compile(r"^\d{8}T\d{6}$")
# barman-cloud's reserved names (reference §1.2): a --name must not look like these.
RESERVED_NAMES = {
    "latest",
    "last",
    "oldest",
    "first",
    "last-failed",
    "latest-full",
    "last-full",
    "auto",
}
TAR_SUFFIXES: dict[str, Codec | None] = {".tar": None} | {
    f".tar{codec.suffix}": codec for codec in CODECS.values() if codec.name != "xz"
}
BACKUP_INFO = "backup.info"
PG_MANIFEST = "backup_manifest"
PGVAULT_MANIFEST = "pgvault.json"
KEEP = "annotations/keep"
TIER = "annotations/tier"  # pgvault's: `archive` while the archives are in the archive tier
#: pgvault's: an incremental's kind in clear, for listing an encrypted catalog without its key
KIND = "annotations/kind"
ENCRYPTED_SUFFIX = ".age"  # barman-cloud skips an unknown extension, then misses the archive

_ARCHIVE_RE = re.compile(r"^(?P<name>data|\d+)(?:_(?P<part>\d{4}))?(?P<suffix>\.tar(?:\.\w+)?)$")


def validate_server_name(name: str) -> str:
    """One key segment, safe in a line of backup.info (core.names): no '/', '.', '..'."""
    if not name or "/" in name or name in (".", "..") or name.strip() != name:
        raise InputError(
            f"invalid server name {name!r}: a name without '/' nor spaces around it, "
            "not '.' or '..' (e.g. pg-main)"
        )
    return check_name(name, "server name")


def validate_backup_name(name: str) -> str:
    """barman-cloud's rule: a name must not look like a backup ID nor be a reserved word;
    and it is safe in a line of backup.info (core.names)."""
    if not name.strip():
        raise InputError("backup name must not be empty")
    check_name(name, "backup name")
    # a logical backup's ID is a physical one's with an L
    if BACKUP_ID_RE.match(name) or BACKUP_ID_RE.match(name.removesuffix("L")):
        raise InputError(f"backup name {name!r} is not allowed: it looks like a backup ID")
    if name in RESERVED_NAMES:
        raise InputError(f"backup name {name!r} is not allowed: reserved word")
    return name


@dataclass(frozen=True)
class ArchiveRef:
    """One tar archive of a backup: PGDATA ('data') or a tablespace OID, its part, codec."""

    name: str
    part: int
    codec: Codec | None
    encrypted: bool = False  # an age file: '.age' after the compression suffix

    @property
    def is_data(self) -> bool:
        return self.name == "data"

    def filename(self) -> str:
        suffix = ".tar" + (self.codec.suffix if self.codec else "")
        part = f"_{self.part:04d}" if self.part else ""
        return f"{self.name}{part}{suffix}{ENCRYPTED_SUFFIX if self.encrypted else ''}"


def parse_archive_name(filename: str) -> ArchiveRef | None:
    """'data_0002.tar.zst' -> ArchiveRef('data', 2, zstd); None for any other file."""
    encrypted = filename.endswith(ENCRYPTED_SUFFIX)
    match = _ARCHIVE_RE.match(filename.removesuffix(ENCRYPTED_SUFFIX))
    if not match or match["suffix"] not in TAR_SUFFIXES:
        return None
    codec = TAR_SUFFIXES[match["suffix"]]
    return ArchiveRef(match["name"], int(match["part"] or 0), codec, encrypted)


@dataclass(frozen=True)
class ServerLayout:
    """The keys of one server's catalog under a destination."""

    server: str

    def __post_init__(self) -> None:
        validate_server_name(self.server)

    # ---- base backups -----------------------------------------------------------------------

    @property
    def base_prefix(self) -> str:
        return f"{self.server}/base/"

    def backup_prefix(self, backup_id: str) -> str:
        return f"{self.server}/base/{backup_id}/"

    def backup_file(self, backup_id: str, filename: str) -> str:
        return f"{self.backup_prefix(backup_id)}{filename}"

    def backup_info(self, backup_id: str) -> str:
        return self.backup_file(backup_id, BACKUP_INFO)

    def keep_annotation(self, backup_id: str) -> str:
        return self.backup_file(backup_id, KEEP)

    def tier_annotation(self, backup_id: str) -> str:
        return self.backup_file(backup_id, TIER)

    def kind_annotation(self, backup_id: str) -> str:
        return self.backup_file(backup_id, KIND)

    def archive(self, backup_id: str, ref: ArchiveRef) -> str:
        return self.backup_file(backup_id, ref.filename())

    def backup_id_of(self, key: str) -> str | None:
        """The backup ID a key under base/ belongs to."""
        if not key.startswith(self.base_prefix):
            return None
        rest = key[len(self.base_prefix) :]
        backup_id, sep, _ = rest.partition("/")
        return backup_id if sep else None

    # ---- WAL ------------------------------------------------------------------------------------

    @property
    def wals_prefix(self) -> str:
        return f"{self.server}/wals/"

    def wal(self, name: str, codec: Codec | None = None) -> str:
        """The key of an archived WAL file (segment, partial, backup label or history)."""
        if not is_wal_name(name):
            raise InputError(f"{name!r} is not a WAL file name")
        suffix = codec.suffix if codec else ""
        directory = hash_dir(name)
        if directory is None:
            return f"{self.wals_prefix}{name}{suffix}"
        return f"{self.wals_prefix}{directory}/{name}{suffix}"

    def wal_dir(self, name: str) -> str:
        """The listing prefix of the directory that holds a WAL name."""
        directory = hash_dir(name)
        return self.wals_prefix if directory is None else f"{self.wals_prefix}{directory}/"

    def parse_wal(self, key: str) -> tuple[str, Codec | None] | None:
        """The WAL name and codec of an archive key, or None for anything else."""
        if not key.startswith(self.wals_prefix):
            return None
        basename = key.rsplit("/", 1)[-1]
        name, codec = codec_for_suffix(basename)
        if not is_wal_name(name):
            return None
        if self.wal(name, codec) != key:
            return None
        return name, codec
