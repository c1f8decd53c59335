"""verify: read every object of a backup and check it against what was recorded.

    run_verify(VerifyRequest(...), reporter) -> VerifyResult

Checks, each problem naming the object: backup.info says DONE; pgvault.json and PostgreSQL's
backup_manifest load (the latter's own SHA-256 matches, and it lists the same files,
sizes and checksums as pgvault.json); the archive parts are contiguous
and are exactly those pgvault.json records; every stored archive's size and checksum; every
archive decompresses and is a complete tar stream; every file in it has the size and
checksum pgvault.json records, and every recorded file is found; every WAL segment the
backup needs to reach consistency is archived, decompresses and has a valid header for its
name and cluster. A catalog barman-cloud wrote has no pgvault.json: what cannot be checked
is said in `not_checked`. Any problem raises VerificationFailed (exit 1) listing them all.
With `restore_drill`, a backup that passes is then restored and started (core.drill).
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from core.backup_info import DONE, BackupInfo
from core.catalog import ArchiveSet, Catalog, StoredArchive
from core.codecs import Decompressor, codec_for_suffix
from core.errors import InputError, IntegrityError, ObjectNotFound, PgvaultError
from core.layout import BACKUP_INFO, PG_MANIFEST, PGVAULT_MANIFEST, ServerLayout
from core.listing import wal_needed
from core.manifest import (
    ArchiveRecord,
    Checksum,
    FileRecord,
    PgvaultManifest,
    check_postgres_manifest,
    load_pgvault,
    new_checksum,
)
from core.progress import NullReporter, Reporter
from core.restore.extract import NOT_RESTORED, clean_name
from core.restore.tarparse import FILE, TarError, TarMember, TarStream
from core.storage import ObjectStore, StoreConfig, open_store
from core.urls import Location
from core.wal.archive import decompress_object
from core.wal.check import archived_wals
from core.wal.header import check_segment

log = logging.getLogger("pgvault.verify")

READ_SIZE = 4 * 1024 * 1024
MAX_PROBLEMS_PER_ARCHIVE = 5


class VerificationFailed(IntegrityError):
    """The backup does not match its records, or misses an object (exit 1)."""


@dataclass(frozen=True)
class VerifyRequest:
    """What to verify, and (restore_drill) how to restore and start it afterwards."""

    location: Location
    server: str
    backup: str  # an ID, a name, latest/oldest
    store_config: StoreConfig = field(default_factory=StoreConfig)
    restore_drill: bool = False
    #: restore_command's pgvault for the drill (None: this pgvault)
    pgvault_command: str | None = None
    #: PostgreSQL's bin directory for the drill (None: found from the backup's version)
    pg_bindir: str | None = None
    #: where the drill's temporary directory is made (None: the system's temp directory)
    work_dir: str | None = None
    amcheck: bool = True
    drill_timeout: float = 600.0


@dataclass(frozen=True)
class VerifyResult:
    backup_id: str
    server: str
    written_by: str  # 'pgvault' or 'barman-cloud'
    objects: int
    bytes_read: int
    checked: tuple[str, ...]
    not_checked: tuple[str, ...]
    drill: tuple[str, ...] = ()


def validate_request(request: VerifyRequest) -> None:
    """Bad input (exit 3) found before anything is read."""
    ServerLayout(request.server)
    if not request.backup:
        raise InputError("name the backup to verify (an ID, a name, latest or oldest)")
    drill_only = [
        flag
        for flag, given in (
            ("--pgvault-command", request.pgvault_command is not None),
            ("--pg-bindir", request.pg_bindir is not None),
            ("--drill-dir", request.work_dir is not None),
            ("--no-amcheck", not request.amcheck),
        )
        if given
    ]
    if drill_only and not request.restore_drill:
        verb = "applies" if len(drill_only) == 1 else "apply"
        raise InputError(f"{' and '.join(drill_only)} {verb} to --restore-drill only")
    if request.pg_bindir is not None and not os.path.isfile(
        os.path.join(request.pg_bindir, "pg_ctl")
    ):
        raise InputError(f"--pg-bindir {request.pg_bindir} holds no pg_ctl")
    if request.work_dir is not None and not os.path.isdir(request.work_dir):
        raise InputError(f"--drill-dir {request.work_dir} is not a directory")
    if request.drill_timeout <= 0:
        raise InputError("--timeout must be positive")


def run_verify(request: VerifyRequest, reporter: Reporter | None = None) -> VerifyResult:
    """Verify one backup (and drill it); VerificationFailed names every problem found."""
    validate_request(request)
    reporter = reporter or NullReporter()
    with open_store(request.location, request.store_config) as store:
        store.meter = reporter.transferred
        verifier = _Verifier(store, request.server, reporter, request.store_config.jobs)
        info = verifier.run(request.backup)
    result = verifier.result(info)
    if verifier.problems:
        shown = "\n  ".join(verifier.problems)
        raise VerificationFailed(
            f"backup {info.backup_id} of server {request.server} failed verification "
            f"({len(verifier.problems)} problem(s)):\n  {shown}\n"
            "do not rely on this backup to restore: take a new one (and verify the others)"
        )
    if request.restore_drill:
        from core.drill import run_drill

        lines = run_drill(request, info, reporter)
        result = VerifyResult(**{**result.__dict__, "drill": tuple(lines)})
    return result


class _FileChecker:
    """Tar handler: each regular file's size and checksum against pgvault.json."""

    def __init__(
        self,
        label: str,
        archive: str,
        prefix: str,
        records: dict[str, FileRecord] | None,
        algorithm: str | None,
        problem: Any,
    ) -> None:
        self.label = label
        self.archive = archive
        self.prefix = prefix
        self.records = records
        self.algorithm = algorithm
        self.problem = problem
        self.seen: set[str] = set()
        self.files = 0
        self._path: str | None = None
        self._record: FileRecord | None = None
        self._checksum: Checksum | None = None
        self._size = 0

    def begin(self, member: TarMember) -> None:
        self._path = None
        if member.kind != FILE:
            return
        path = self.prefix + clean_name(member.name, self.label)
        self.files += 1
        if self.records is None:
            return
        record = self.records.get(path)
        if record is None:
            if not self.prefix and (path in NOT_RESTORED or path.startswith("pg_wal/")):
                return
            self.problem(f"{self.label}: holds {path}, which pgvault.json does not record")
            return
        if record.archive != self.archive:
            return  # a later copy in another part is the one restored (and checked there)
        self._path = path
        self._record = record
        self._checksum = new_checksum(self.algorithm) if self.algorithm else None
        self._size = 0

    def data(self, chunk: memoryview) -> None:
        if self._path is not None:
            self._size += len(chunk)
            if self._checksum is not None:
                self._checksum.update(bytes(chunk))

    def end(self) -> None:
        if self._path is None or self._record is None:
            return
        path, record = self._path, self._record
        self._path = None
        self.seen.add(path)
        digest = self._checksum.hexdigest() if self._checksum is not None else None
        if self._size != record.size:
            self.problem(
                f"{self.label}: {path} is {self._size} bytes, pgvault.json records {record.size}"
            )
        elif digest != record.checksum:
            self.problem(
                f"{self.label}: {path} has checksum {digest}, pgvault.json records "
                f"{record.checksum}"
            )


def _feed(parser: TarStream, decompressor: Decompressor | None, chunk: bytes | None) -> str | None:
    """Feed the tar parser (None: finish it); why the stream is unreadable, or None."""
    try:
        if chunk is None:
            parser.finish()
        else:
            parser.feed(decompressor.decompress(chunk) if decompressor else chunk)
    except Exception as exc:  # each codec library raises its own error types
        plain = isinstance(exc, TarError | PgvaultError)
        return str(exc) if plain else f"{type(exc).__name__}: {exc}"
    return None


def manifest_disagreements(document: dict[str, Any], files: dict[str, FileRecord]) -> list[str]:
    """Where PostgreSQL's backup_manifest and pgvault.json disagree (both list every file)."""
    out: list[str] = []
    listed: set[str] = set()
    for entry in document.get("Files", []):
        path = entry.get("Path")
        if path is None:
            path = bytes.fromhex(entry.get("Encoded-Path", "")).decode("utf-8", "surrogateescape")
        listed.add(path)
        record = files.get(path)
        if record is None:
            out.append(f"{path} is listed, but not in {PGVAULT_MANIFEST}")
        elif entry.get("Size") != record.size or entry.get("Checksum") != record.checksum:
            out.append(
                f"{path}: size {entry.get('Size')} and checksum {entry.get('Checksum')} here, "
                f"{record.size} and {record.checksum} in {PGVAULT_MANIFEST}"
            )
    out += [
        f"{path} is in {PGVAULT_MANIFEST}, not listed here" for path in sorted(set(files) - listed)
    ]
    return out


@dataclass
class _PartResult:
    checker: _FileChecker | None  # None: the archive could not be read whole
    problems: list[str]
    size: int


class _Verifier:
    def __init__(self, store: ObjectStore, server: str, reporter: Reporter, jobs: int = 1) -> None:
        self.jobs = jobs
        self.store = store
        self.server = server
        self.layout = ServerLayout(server)
        self.reporter = reporter
        self.catalog = Catalog(store, server)
        self.problems: list[str] = []
        self.checked: list[str] = []
        self.not_checked: list[str] = []
        self.objects = 0
        self.bytes_read = 0
        self.manifest: PgvaultManifest | None = None
        self.has_manifest = False  # a pgvault.json is stored (readable or not)

    def problem(self, text: str) -> None:
        self.problems.append(text)
        self.reporter.log(text, logging.ERROR)

    def result(self, info: BackupInfo) -> VerifyResult:
        return VerifyResult(
            backup_id=info.backup_id,
            server=self.server,
            written_by="pgvault" if self.has_manifest else "barman-cloud",
            objects=self.objects,
            bytes_read=self.bytes_read,
            checked=tuple(self.checked),
            not_checked=tuple(self.not_checked),
        )

    def read(self, key: str) -> bytes:
        data = self.store.get_bytes(key)
        self.objects += 1
        self.bytes_read += len(data)
        return data

    # ---- the backup ----------------------------------------------------------------------

    def run(self, reference: str) -> BackupInfo:
        reporter = self.reporter
        reporter.phase("reading the catalog")
        info = self.catalog.resolve(reference)
        backup_id = info.backup_id
        reporter.detail("backup_id", backup_id)
        layout = self.layout
        listed = {o.key: o for o in self.store.list_objects(layout.backup_prefix(backup_id))}
        info_key = layout.backup_info(backup_id)
        self.read(info_key)
        if info.status != DONE:
            self.problem(f"{info_key}: the backup's status is {info.status}, not DONE")
        else:
            self.checked.append(f"{BACKUP_INFO}: readable, status DONE")
        self._manifests(backup_id, listed)
        archive_keys = self._archives(info)
        self._other_objects(backup_id, listed, archive_keys)
        self._wal(info)
        reporter.phase("done")
        return info

    def _manifests(self, backup_id: str, listed: dict[str, Any]) -> None:
        key = self.layout.backup_file(backup_id, PGVAULT_MANIFEST)
        self.has_manifest = key in listed
        if self.has_manifest:
            try:
                self.manifest = load_pgvault(self.read(key))
            except PgvaultError as exc:
                self.problem(f"{key}: {exc}")
            else:
                if self.manifest.state != "done":
                    self.problem(f"{key}: the backup's state is {self.manifest.state}, not done")
                else:
                    self.checked.append(f"{PGVAULT_MANIFEST}: readable, state done")
        else:
            self.not_checked.append(
                f"no {PGVAULT_MANIFEST} (barman-cloud wrote this backup): the stored archives "
                "and the files in them have no recorded sizes or checksums to check against, "
                "and a missing last archive part cannot be noticed; every archive was read, "
                "decompressed and parsed as a complete tar stream instead"
            )
        pg_key = self.layout.backup_file(backup_id, PG_MANIFEST)
        if pg_key in listed:
            try:
                document = check_postgres_manifest(self.read(pg_key))
            except PgvaultError as exc:
                self.problem(f"{pg_key}: {exc}")
                return
            if self.manifest is None:
                self.checked.append(f"{PG_MANIFEST}: its own SHA-256 checksum matches")
                return
            files = {f.path: f for f in self.manifest.files}
            disagreements = manifest_disagreements(document, files)
            for text in disagreements[:MAX_PROBLEMS_PER_ARCHIVE]:
                self.problem(f"{pg_key}: {text}")
            if len(disagreements) > MAX_PROBLEMS_PER_ARCHIVE:
                more = len(disagreements) - MAX_PROBLEMS_PER_ARCHIVE
                self.problem(f"{pg_key}: ... and {more} more files disagree")
            if not disagreements:
                self.checked.append(
                    f"{PG_MANIFEST}: its own SHA-256 checksum matches, and it lists the same "
                    f"{len(files)} files, sizes and checksums as {PGVAULT_MANIFEST}"
                )
        elif self.manifest is not None:
            self.not_checked.append(f"no {PG_MANIFEST}: pg_verifybackup cannot check a restore")

    def _archives(self, info: BackupInfo) -> set[str]:
        try:
            sets = self.catalog.archives(info)
        except PgvaultError as exc:
            self.problem(str(exc))
            return set()
        manifest = self.manifest
        parts = [(s, p) for s in sets for p in s.parts]
        records: dict[str, ArchiveRecord] = {}
        files: dict[str, FileRecord] | None = None
        if manifest is not None:
            records = {a.filename: a for a in manifest.archives}
            files = {f.path: f for f in manifest.files}
            stored = {p.filename for _, p in parts}
            for filename in sorted(set(records) - stored):
                key = self.layout.backup_file(info.backup_id, filename)
                self.problem(f"{key}: recorded in {PGVAULT_MANIFEST}, missing from the store")
            for _, part in parts:
                if part.filename not in records:
                    self.problem(f"{part.key}: stored, but not recorded in {PGVAULT_MANIFEST}")
        self.reporter.set_totals(bytes_total=sum(p.size for _, p in parts))
        self.reporter.phase("reading the archives")
        seen: set[str] = set()
        complete: set[str] = set()
        file_count = 0

        def read(item: tuple[ArchiveSet, StoredArchive]) -> _PartResult:
            archive_set, part = item
            prefix = "" if archive_set.tablespace is None else f"pg_tblspc/{archive_set.name}/"
            return self._part(part, prefix, records.get(part.filename), files)

        # Several archives at once (-J); their problems reported in part order.
        workers = max(1, min(self.jobs, len(parts)))
        with ThreadPoolExecutor(workers, thread_name_prefix="pgvault-verify") as pool:
            results = list(pool.map(read, parts))
        for (_, part), result in zip(parts, results, strict=True):
            self.objects += 1
            self.bytes_read += result.size
            for text in result.problems:
                self.problem(text)
            checker = result.checker
            if checker is not None:
                seen |= checker.seen
                file_count += checker.files
                complete.add(part.filename)
        if files is not None:
            absent = sorted(p for p, f in files.items() if f.archive in complete and p not in seen)
            for path in absent[:MAX_PROBLEMS_PER_ARCHIVE]:
                key = self.layout.backup_file(info.backup_id, files[path].archive)
                self.problem(f"{key}: {path} is recorded in {PGVAULT_MANIFEST} but not in it")
            if len(absent) > MAX_PROBLEMS_PER_ARCHIVE:
                self.problem(f"... and {len(absent) - MAX_PROBLEMS_PER_ARCHIVE} more files absent")
        if parts:
            if manifest is not None:
                algorithm = manifest.checksum_algorithm
                self.checked.append(
                    f"{len(parts)} archive object(s): sizes and {algorithm} checksums of the "
                    f"stored bytes match {PGVAULT_MANIFEST}"
                )
                self.checked.append(
                    f"{file_count} file(s) in them: sizes and {algorithm} checksums match "
                    f"{PGVAULT_MANIFEST}, and every recorded file is present"
                )
            else:
                self.checked.append(
                    f"{len(parts)} archive object(s) read to the end: each decompresses and is "
                    f"a complete tar stream ({file_count} files)"
                )
        return {p.key for _, p in parts}

    def _part(
        self,
        part: StoredArchive,
        prefix: str,
        record: ArchiveRecord | None,
        files: dict[str, FileRecord] | None,
    ) -> _PartResult:
        """Read one stored archive (on a worker thread): its checker when read whole."""
        label = part.key
        problems: list[str] = []

        def problem(text: str) -> None:
            if len(problems) < MAX_PROBLEMS_PER_ARCHIVE:
                problems.append(text)

        manifest = self.manifest
        algorithm = manifest.checksum_algorithm if manifest else None
        checker = _FileChecker(label, part.filename, prefix, files, algorithm, problem)
        checksum = new_checksum(algorithm) if algorithm and record is not None else None
        codec = part.ref.codec
        decompressor = codec.decompressor() if codec else None
        parser = TarStream(checker)
        size = 0
        broken: str | None = None  # why the archive cannot be read as a tar stream
        try:
            with self.store.open_reader(part.key) as reader:
                while True:
                    self.reporter.checkpoint()
                    chunk = reader.read(READ_SIZE)
                    if not chunk:
                        break
                    size += len(chunk)
                    self.reporter.advance(len(chunk))
                    if checksum is not None:
                        checksum.update(chunk)
                    if broken is None:  # read on to the end: the stored checksum says more
                        broken = _feed(parser, decompressor, chunk)
        except ObjectNotFound:
            problem(f"{label}: listed, but gone when read")
            return _PartResult(None, problems, size)
        if broken is None:
            if decompressor is not None and not decompressor.eof:
                broken = f"the {codec.name if codec else ''} stream is truncated"
            else:
                broken = _feed(parser, None, None)
        if size != part.size:
            problem(f"{label}: {size} bytes read, {part.size} listed")
        if checksum is not None and record is not None:
            self._compare_stored(label, size, checksum, record, problem)
        if broken is not None:
            problem(f"{label}: unreadable archive: {broken}")
            return _PartResult(None, problems, size)
        return _PartResult(checker, problems, size)

    @staticmethod
    def _compare_stored(
        label: str, size: int, checksum: Checksum, record: ArchiveRecord, problem: Any
    ) -> None:
        if size != record.size:
            problem(f"{label}: {size} bytes stored, {PGVAULT_MANIFEST} records {record.size}")
        elif checksum.hexdigest() != record.checksum:
            problem(
                f"{label}: checksum {checksum.hexdigest()} of the stored bytes does not match "
                f"the {record.checksum} recorded in {PGVAULT_MANIFEST}"
            )

    def _other_objects(
        self, backup_id: str, listed: dict[str, Any], archive_keys: set[str]
    ) -> None:
        """Whatever else the backup's directory holds (annotations...) must be readable."""
        done = {
            self.layout.backup_info(backup_id),
            self.layout.backup_file(backup_id, PGVAULT_MANIFEST),
            self.layout.backup_file(backup_id, PG_MANIFEST),
            *archive_keys,
        }
        for key in sorted(set(listed) - done):
            try:
                self.read(key)
            except PgvaultError as exc:
                self.problem(f"{key}: {exc}")

    # ---- WAL -----------------------------------------------------------------------------

    def _wal(self, info: BackupInfo) -> None:
        self.reporter.phase("checking the WAL the backup needs")
        needed = wal_needed(info, self.manifest)
        if not needed.segments:
            self.problem(
                f"{self.layout.backup_info(info.backup_id)}: names no begin_wal: the WAL the "
                "backup needs cannot be known"
            )
            return
        archived = archived_wals(self.store, self.server)
        sysid = int(info.systemid) if info.systemid and str(info.systemid).isdigit() else None
        good = 0
        for name in needed.segments:
            key = archived.get(name)
            if key is None:
                self.problem(
                    f"{self.layout.wal(name)}: WAL segment {name}, needed to restore backup "
                    f"{info.backup_id}, is not in the archive"
                )
                continue
            _, codec = codec_for_suffix(key)
            try:
                data = decompress_object(key, codec, self.read(key))
                check_segment(name, data, sysid)
            except PgvaultError as exc:
                self.problem(f"{key}: {exc}")
                continue
            good += 1
        timelines = {int(name[:8], 16) for name in needed.segments}
        for timeline in sorted(t for t in timelines if t > 1):
            history = f"{timeline:08X}.history"
            if history not in archived:
                self.problem(
                    f"{self.layout.wal(history)}: timeline {timeline}'s history file is not in "
                    "the archive"
                )
        if good == len(needed.segments):
            first, last = needed.segments[0], needed.segments[-1]
            span = first if first == last else f"{first} .. {last}"
            self.checked.append(
                f"{good} WAL segment(s) needed to reach consistency ({span}): archived, "
                "decompress, and have valid headers for their names and this cluster"
            )
        self.not_checked.append(
            "WAL records are not replayed here (--restore-drill does that), and the WAL "
            "after the backup (point-in-time recovery) is check-wal-archive's job"
        )


# ---- jobs -------------------------------------------------------------------------------------


def result_dict(result: VerifyResult) -> dict[str, Any]:
    return {
        "backup_id": result.backup_id,
        "server": result.server,
        "written_by": result.written_by,
        "objects": result.objects,
        "bytes_read": result.bytes_read,
        "checked": list(result.checked),
        "not_checked": list(result.not_checked),
        "drill": list(result.drill),
        "summary": f"backup {result.backup_id}: verified, {result.objects} objects, "
        f"{result.bytes_read} bytes read" + (", restore drill passed" if result.drill else ""),
    }


def result_lines(result: dict[str, Any]) -> list[str]:
    """What `verify` prints, from a job's recorded result."""
    lines = [f"verified: {line}" for line in result.get("checked", [])]
    lines += [f"not checked: {line}" for line in result.get("not_checked", [])]
    lines += [f"drill: {line}" for line in result.get("drill", [])]
    lines.append(str(result.get("summary", "")))
    return lines


def run_verify_job(request: VerifyRequest, reporter: Reporter) -> dict[str, Any]:
    return result_dict(run_verify(request, reporter))


def public_request(request: VerifyRequest) -> VerifyRequest:
    from dataclasses import replace

    return replace(request, location=request.location.without_credentials())


def describe(request: VerifyRequest) -> str:
    drill = " with a restore drill" if request.restore_drill else ""
    return (
        f"verify backup {request.backup} of {request.server} in {request.location.display()}{drill}"
    )


__all__ = [
    "VerificationFailed",
    "VerifyRequest",
    "VerifyResult",
    "describe",
    "manifest_disagreements",
    "public_request",
    "result_dict",
    "result_lines",
    "run_verify",
    "run_verify_job",
    "validate_request",
]
