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
is said in `not_checked`. A logical backup's ID is checked by core.logical.verify (each stored
object's size and SHA-256). Any problem raises VerificationFailed (exit 1) listing them all.
With `restore_drill`, a backup that passes is then restored and started (core.drill).
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from core.catalog.backup_info import DONE, BackupInfo
from core.catalog.chains import FULL, chain_of, kind_of, link_sets
from core.catalog.layout import BACKUP_INFO, PG_MANIFEST, PGVAULT_MANIFEST, ServerLayout
from core.catalog.listing import wal_needed
from core.catalog.manifest import FileRecord, PgvaultManifest, check_postgres_manifest, load_pgvault
from core.catalog.reader import ArchiveSet, Catalog, StoredArchive
from core.codecs import codec_for_suffix
from core.drill import DrillRequest, run_drill
from core.encryption import open_object, unlocked_keys
from core.errors import InputError, IntegrityError, OperationFailed, PgvaultError
from core.logical.layout import is_logical_id
from core.logical.verify import check_logical
from core.progress import NullReporter, Reporter
from core.storage import ObjectStore, StoreConfig, open_store
from core.urls import Location
from core.verify_archive import MAX_PROBLEMS_PER_ARCHIVE, PartResult, Recorded, read_archive
from core.wal.archive import decompress_object
from core.wal.check import archived_wals
from core.wal.header import check_segment

log = logging.getLogger("pgvault.verify")


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
    if request.restore_drill and is_logical_id(request.backup):
        raise InputError(
            "--restore-drill applies to physical backups: restore a logical backup "
            "(restore --database) to try it"
        )
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
    if is_logical_id(request.backup):
        return _verify_logical(request, reporter)
    with open_store(request.location, request.store_config) as store:
        store.meter = reporter.transferred
        store.gate = reporter.checkpoint  # a pause stops the reads within a slice
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
        lines = run_drill(drill_request(request), info, reporter)
        result = VerifyResult(**{**result.__dict__, "drill": tuple(lines)})
    return result


def _verify_logical(request: VerifyRequest, reporter: Reporter) -> VerifyResult:
    """A logical backup: every stored object against logical.json (core.logical.verify)."""
    with open_store(request.location, request.store_config) as store:
        store.meter = reporter.transferred
        store.gate = reporter.checkpoint
        found = check_logical(
            store, request.server, request.backup, reporter, request.store_config.jobs
        )
    if found.problems:
        shown = "\n  ".join(found.problems)
        raise VerificationFailed(
            f"logical backup {found.backup_id} of server {request.server} failed verification "
            f"({len(found.problems)} problem(s)):\n  {shown}\n"
            "do not rely on this backup to restore: take a new one (and verify the others)"
        )
    return VerifyResult(
        backup_id=found.backup_id,
        server=request.server,
        written_by="pgvault",
        objects=found.objects,
        bytes_read=found.bytes_read,
        checked=tuple(found.checked),
        not_checked=tuple(found.not_checked),
    )


def drill_request(request: VerifyRequest) -> DrillRequest:
    """The restore drill's part of a verify request."""
    return DrillRequest(
        location=request.location,
        server=request.server,
        store_config=request.store_config,
        pgvault_command=request.pgvault_command,
        pg_bindir=request.pg_bindir,
        work_dir=request.work_dir,
        amcheck=request.amcheck,
        timeout=request.drill_timeout,
    )


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

    def _open(self, key: str) -> bytes:
        """An object's plaintext (decrypted when the server encrypts)."""
        return open_object(self.store, self.server, self.read(key), key)

    # ---- the backup ----------------------------------------------------------------------

    def run(self, reference: str) -> BackupInfo:
        reporter = self.reporter
        reporter.phase("reading the catalog")
        info = self.catalog.resolve(reference)
        backup_id = info.backup_id
        if info.snapshots_info:
            raise InputError(
                f"backup {backup_id} is a snapshot backup: its data is in disk snapshots, "
                "which verify cannot read (restore it on an instance to check it)"
            )
        if backup_id in self.catalog.archived():
            from core.catalog.tier import rehydrate_hint

            raise OperationFailed(rehydrate_hint(backup_id, self.server))
        reporter.detail("backup_id", backup_id)
        self._unlock_first(info)
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

    def _unlock_first(self, info: BackupInfo) -> None:
        """A missing or wrong key fails before anything is judged (exit 1, one line): read
        without it, every encrypted object would count as damage, as if the backup were bad."""
        seen: set[str] = set()
        current: BackupInfo | None = info
        while current is not None and current.backup_id not in seen:
            seen.add(current.backup_id)
            if self.catalog.is_encrypted(current.backup_id):
                unlocked_keys(self.store, self.server)
                return
            parent = current.parent_backup_id
            current = self.catalog.get(parent) if parent in self.catalog.objects() else None

    def _manifests(self, backup_id: str, listed: dict[str, Any]) -> None:
        key = self.layout.backup_file(backup_id, PGVAULT_MANIFEST)
        self.has_manifest = key in listed
        if self.has_manifest:
            try:
                self.manifest = load_pgvault(self._open(key))
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
        self._postgres_manifest(backup_id, listed)

    def _postgres_manifest(self, backup_id: str, listed: dict[str, Any]) -> None:
        pg_key = self.layout.backup_file(backup_id, PG_MANIFEST)
        if pg_key in listed:
            try:
                document = check_postgres_manifest(self._open(pg_key))
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
            sets = self._sets(info)
        except PgvaultError as exc:
            self.problem(str(exc))
            return set()
        parts = [(s, p) for s in sets for p in s.parts]
        recorded = self._recorded(info.backup_id, parts)
        self.reporter.set_totals(bytes_total=sum(p.size for _, p in parts))
        self.reporter.phase("reading the archives")

        def read(item: tuple[ArchiveSet, StoredArchive]) -> PartResult:
            archive_set, part = item
            prefix = "" if archive_set.tablespace is None else f"pg_tblspc/{archive_set.name}/"
            return read_archive(self.store, self.reporter, part, prefix, recorded)

        # Several archives at once (-J); their problems reported in part order.
        workers = max(1, min(self.jobs, len(parts)))
        with ThreadPoolExecutor(workers, thread_name_prefix="pgvault-verify") as pool:
            results = list(pool.map(read, parts))
        seen: set[str] = set()
        complete: set[str] = set()
        file_count = 0
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
        if recorded.files is not None:
            self._absent(info.backup_id, recorded.files, complete, seen)
        if parts:
            self._archives_checked(len(parts), file_count)
        return {p.key for _, p in parts}

    def _sets(self, info: BackupInfo) -> list[ArchiveSet]:
        """The archive sets; an incremental's as pgvault.json records them, its chain checked."""
        manifest = self.manifest
        if manifest is None or kind_of(manifest) == FULL:
            return self.catalog.archives(info)
        whole = True
        for backup_id in chain_of(manifest):
            try:
                status = self.catalog.get(backup_id).status
            except PgvaultError:
                status = "missing"
            if status != DONE:
                whole = False
                self.problem(f"backup {backup_id} of its chain is {status}: it cannot be restored")
        if whole:
            chain = " > ".join([*chain_of(manifest), info.backup_id])
            self.checked.append(f"chain {chain}: every backup it builds on is there and DONE")
        return list(link_sets(self.catalog, info, manifest))

    def _recorded(self, backup_id: str, parts: list[tuple[ArchiveSet, StoredArchive]]) -> Recorded:
        """pgvault.json's records; a problem for each part stored but not recorded, or back."""
        manifest = self.manifest
        if manifest is None:
            return Recorded({}, None, None)
        records = {a.filename: a for a in manifest.archives}
        stored = {p.filename for _, p in parts}
        for filename in sorted(set(records) - stored):
            key = self.layout.backup_file(backup_id, filename)
            self.problem(f"{key}: recorded in {PGVAULT_MANIFEST}, missing from the store")
        for _, part in parts:
            if part.filename not in records:
                self.problem(f"{part.key}: stored, but not recorded in {PGVAULT_MANIFEST}")
        files = {f.path: f for f in manifest.files}
        return Recorded(records, files, manifest.checksum_algorithm)

    def _absent(
        self, backup_id: str, files: dict[str, FileRecord], complete: set[str], seen: set[str]
    ) -> None:
        """Files recorded in an archive that was read whole, but not found in it."""
        absent = sorted(p for p, f in files.items() if f.archive in complete and p not in seen)
        for path in absent[:MAX_PROBLEMS_PER_ARCHIVE]:
            key = self.layout.backup_file(backup_id, files[path].archive)
            self.problem(f"{key}: {path} is recorded in {PGVAULT_MANIFEST} but not in it")
        if len(absent) > MAX_PROBLEMS_PER_ARCHIVE:
            self.problem(f"... and {len(absent) - MAX_PROBLEMS_PER_ARCHIVE} more files absent")

    def _archives_checked(self, parts: int, file_count: int) -> None:
        if self.manifest is not None:
            algorithm = self.manifest.checksum_algorithm
            self.checked.append(
                f"{parts} archive object(s): sizes and {algorithm} checksums of the "
                f"stored bytes match {PGVAULT_MANIFEST}"
            )
            self.checked.append(
                f"{file_count} file(s) in them: sizes and {algorithm} checksums match "
                f"{PGVAULT_MANIFEST}, and every recorded file is present"
            )
        else:
            self.checked.append(
                f"{parts} archive object(s) read to the end: each decompresses and is "
                f"a complete tar stream ({file_count} files)"
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
                data = decompress_object(key, codec, self._open(key))
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
