"""The fetch phase of a chain: every link's parts streamed at once, `-J` parts at a time.

The newest link's parts go through the ordinary extractor (directories, whole files,
pg_control held back until the end) except its changed blocks; older links only give the
blocks the manifests say are theirs (core.restore.chain), so no link waits for another.
"""

from __future__ import annotations

from functools import partial

from core.catalog.chains import kind_of
from core.catalog.manifest import CRC32C, FileRecord, new_checksum
from core.catalog.reader import StoredArchive
from core.errors import IntegrityError
from core.restore.chain import (
    BlockSink,
    ChainLink,
    ChainWritten,
    LinkWritten,
    Need,
    Needs,
    finish_needs,
    settle_need,
)
from core.restore.crc_join import Crc32cJoin
from core.restore.extract import (
    Destination,
    Extractor,
    RestoreState,
    apply_directory_metadata,
    clean_name,
)
from core.restore.fetch import RANGE_SIZE, count_part, fetch_files, run_all, untar_part
from core.restore.state import RestoreRun
from core.restore.streams import Aborted, Budget, StoredBytes
from core.restore.tarparse import FILE, TarMember


def fetch_backup(run: RestoreRun) -> None:
    """The phase: a full backup's parts, or an incremental's whole chain."""
    if run.plan.chain:
        fetch_chain(run)
    else:
        fetch_files(run)


def fetch_chain(run: RestoreRun) -> None:
    """Every link's parts at once (which link writes each block is known from the manifests);
    then the files short of blocks sized, dated and owned."""
    links = run.plan.chain
    where = run.plan.destinations
    block_size = int((links[0].manifest.incremental or {}).get("block_size", 8192))
    crc32c = links[0].manifest.checksum_algorithm == CRC32C
    needs = Needs.of(links, where, block_size, checksums=crc32c)

    def settled(need: Need) -> bool:  # complete while other parts are still read: fsync now
        if run.as_root and run.files.root_owner is None:
            return False  # the data directory's owner is not known yet
        settle_need(need, run.files.root_owner if run.as_root else None)
        run.syncer.add(need.path)
        return True

    needs.on_complete = settled
    parts = _parts(run, links, needs)
    total = sum(part.size for _index, part, _dest in parts)
    run.reporter.set_totals(bytes_total=total, files_total=len(run.files.records or {}))
    run.reporter.phase(
        f"restoring {links[0].info.backup_id} and the {len(links) - 1} older backups of its chain"
    )
    jobs = max(1, run.request.store_config.jobs)
    budget = Budget(jobs)
    run_all(
        run,
        [partial(_part, run, links[i], i, part, dest, needs, budget) for i, part, dest in parts],
        min(jobs, max(len(parts), 1)),
        "pgvault-chain",
    )
    whole = (run.files.files, run.files.bytes)  # the newest link's, by the extractor
    owner = run.files.root_owner if run.as_root else None
    late = [need for need in needs.files.values() if not need.settled]
    run.warnings += finish_needs(needs, owner)
    for need in late:
        run.syncer.add(need.path)
    apply_directory_metadata(run.files)
    written = _written(links, needs, whole)
    run.chain_written = written
    with run.files.lock:
        run.files.files += len(needs.files)
        run.files.bytes += sum(n for _, n in needs.written.values())
    run.verified.append(written.describe())


def _parts(
    run: RestoreRun, links: tuple[ChainLink, ...], needs: Needs
) -> list[tuple[int, StoredArchive, Destination]]:
    """Each link's parts to fetch (not those of a link none of whose blocks is needed): the
    newest link's first (it lays out the directories), then the smallest first, so that the
    incrementals' scattered blocks are in place before the full's long runs around them
    (measured: the full's writer is the critical path, and it slows when they compete)."""
    where = run.plan.destinations
    used = {0}.union(*(need.sources for need in needs.files.values()))
    parts = [
        (index, part, where[s.name])
        for index, link in enumerate(links)
        if index in used
        for s in link.sets
        if s.name in where  # a tablespace dropped since: nothing of it is needed
        for part in s.parts
    ]
    return sorted(parts, key=lambda p: (p[0] != 0, p[1].size))


def _written(links: tuple[ChainLink, ...], needs: Needs, whole: tuple[int, int]) -> ChainWritten:
    """Each link's share of the restored directory; the assembled files' joined CRC32Cs."""
    checksums = {}
    if needs.checksums:
        join = Crc32cJoin(needs.block_size)
        for path, need in needs.files.items():
            digest = need.checksum(join)
            if digest is not None:
                checksums[path] = digest
    shares = []
    for index, link in enumerate(links):
        blocks, size = needs.written.get(index, (0, 0))
        own = whole if index == 0 else (0, 0)
        shares.append(LinkWritten(link.info.backup_id, kind_of(link.manifest), own, (blocks, size)))
    return ChainWritten(tuple(shares), len(needs.files), checksums)


def _part(  # noqa: PLR0913, PLR0917 - a worker's arguments, submitted as they are
    run: RestoreRun,
    link: ChainLink,
    index: int,
    part: StoredArchive,
    dest: Destination,
    needs: Needs,
    budget: Budget,
) -> None:
    if run.abort.is_set():
        raise Aborted
    label = f"{run.store.describe().rstrip('/')}/{part.key}"
    record = link.manifest.archive(part.filename)
    reader = run.store.open_prefetching_reader(
        part.key, size=part.size, part_size=RANGE_SIZE, jobs=budget.jobs, limit=budget.semaphore
    )
    budget.add(reader)
    algorithm = link.manifest.checksum_algorithm
    source = StoredBytes(reader, new_checksum(algorithm), run.reporter, run.abort)
    handler: _NewestLink | _OlderLink
    if index == 0:
        handler = _NewestLink(
            run.files, Extractor(run.files, dest, part.filename, label), link, needs, dest, label
        )
    else:
        handler = _OlderLink(link, index, needs, dest, part.filename, label)
    try:
        untar_part(run, part, source, handler, label)
    finally:
        handler.close()  # the file a failed or cancelled part was writing
        budget.remove(reader)
        reader.close()
    count_part(run, part, source, record, label)


class _Blocks:
    """A member routed to a BlockSink, checked against its record when it ends."""

    def __init__(self, sink: BlockSink, record: FileRecord | None, label: str) -> None:
        self.sink = sink
        self.record = record
        self.label = label

    def finish(self) -> None:
        digest = self.sink.end()
        record = self.record
        if record is not None and digest is not None and digest != record.checksum:
            raise IntegrityError(
                f"{record.path} in {self.label} does not match its checksum in pgvault.json: "
                "the stored archive is damaged"
            )


class _NewestLink:
    """The restored backup's own part: the extractor, except for its changed blocks."""

    def __init__(
        self,
        state: RestoreState,
        extractor: Extractor,
        link: ChainLink,
        needs: Needs,
        dest: Destination,
        label: str,
    ) -> None:
        self.state = state
        self.extractor = extractor
        self.maps = link.block_maps
        self.records = link.records
        self.needs = needs
        self.dest = dest
        self.label = label
        self.algorithm = link.manifest.checksum_algorithm
        self.blocks: _Blocks | None = None

    def begin(self, member: TarMember) -> None:
        path = self.dest.manifest_prefix + clean_name(member.name, self.label)
        if member.kind == FILE and path in self.maps:
            sink = BlockSink(self.needs, path, self.maps[path], self.algorithm, 0)
            self.blocks = _Blocks(sink, self.records.get(path), self.label)
        else:
            self.blocks = None
            self.extractor.begin(member)

    def data(self, chunk: memoryview) -> None:
        if self.blocks is not None:
            self.blocks.sink.data(chunk)
        else:
            self.extractor.data(chunk)

    def close(self) -> None:
        self.extractor.close()
        if self.blocks is not None:
            self.blocks.sink.close()

    def end(self) -> None:
        blocks, self.blocks = self.blocks, None
        if blocks is None:
            self.extractor.end()
            return
        blocks.finish()
        with self.state.lock:  # counted among the assembled files once the chain is written
            self.state.written.add(blocks.sink.manifest_path)
        self.state.advance_files(1)


class _OlderLink:
    """An older link's part: only the blocks the manifests give it (Needs.of)."""

    def __init__(
        self, link: ChainLink, index: int, needs: Needs, dest: Destination, archive: str, label: str
    ) -> None:
        self.maps = link.block_maps
        self.records = link.records
        self.needs = needs
        self.dest = dest
        self.archive = archive
        self.label = label
        self.algorithm = link.manifest.checksum_algorithm
        self.index = index
        self.blocks: _Blocks | None = None

    def begin(self, member: TarMember) -> None:
        self.blocks = None
        if member.kind != FILE:
            return
        path = self.dest.manifest_prefix + clean_name(member.name, self.label)
        record = self.records.get(path)
        if record is not None and record.archive != self.archive:
            return  # a later copy in another part wins (tar's rule)
        if self.needs.wants(path, self.index):
            sink = BlockSink(self.needs, path, self.maps.get(path), self.algorithm, self.index)
            self.blocks = _Blocks(sink, record, self.label)

    def data(self, chunk: memoryview) -> None:
        if self.blocks is not None:
            self.blocks.sink.data(chunk)

    def close(self) -> None:
        if self.blocks is not None:
            self.blocks.sink.close()

    def end(self) -> None:
        blocks, self.blocks = self.blocks, None
        if blocks is not None:
            blocks.finish()


__all__ = ["fetch_backup", "fetch_chain"]
