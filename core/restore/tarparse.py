"""A push parser for tar streams: feed it decompressed bytes, it calls a handler per member.

It reads what barman-cloud (tarfile, PAX), pgvault (PAX) and GNU tar write: ustar headers,
PAX extended and global headers, GNU long names and long link names. Nothing is buffered
but a header: file contents go to the handler as memoryview slices of the fed chunks.
The stream must end with tar's end-of-archive marker (two zero blocks): an archive cut at
a member boundary is as truncated as one cut inside a member.
"""

from __future__ import annotations

import tarfile
from dataclasses import dataclass, replace
from typing import Protocol

BLOCK = 512
MAX_META = 1024 * 1024  # a PAX header or GNU long name larger than this is not a sane archive
END_BLOCKS = 2  # two zero blocks end a tar archive

FILE, DIRECTORY, SYMLINK, HARDLINK, OTHER = "file", "directory", "symlink", "hardlink", "other"
_KINDS = {
    tarfile.REGTYPE: FILE,
    tarfile.AREGTYPE: FILE,
    tarfile.CONTTYPE: FILE,
    tarfile.DIRTYPE: DIRECTORY,
    tarfile.SYMTYPE: SYMLINK,
    tarfile.LNKTYPE: HARDLINK,
}
_META_TYPES = (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK)


class TarError(ValueError):
    """The stream is not a tar archive pgvault can restore from (the message says why)."""


@dataclass(frozen=True, slots=True)
class TarMember:
    """One member as the archive describes it (name as written: not yet checked)."""

    name: str
    kind: str
    type: bytes
    size: int
    mode: int
    uid: int
    gid: int
    uname: str
    gname: str
    mtime: float
    linkname: str


class TarHandler(Protocol):
    def begin(self, member: TarMember) -> None: ...

    def data(self, chunk: memoryview) -> None: ...

    def end(self) -> None: ...


def _pax_records(raw: bytes) -> dict[str, str]:
    """'%d key=value\\n' records (the length counts the whole record)."""
    records: dict[str, str] = {}
    pos = 0
    while pos < len(raw):
        if raw[pos] == 0:  # padding some writers leave after the records
            break
        space = raw.find(b" ", pos)
        try:
            length = int(raw[pos:space])
        except ValueError:
            raise TarError("malformed PAX header") from None
        record = raw[space + 1 : pos + length]
        if length <= 0 or not record.endswith(b"\n") or b"=" not in record:
            raise TarError("malformed PAX header")
        key, _, value = record[:-1].partition(b"=")
        records[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        pos += length
    return records


def _apply_pax(member: TarMember, pax: dict[str, str]) -> TarMember:
    if any(k.startswith("GNU.sparse") for k in pax):
        raise TarError(f"{member.name}: sparse members are not supported")
    changes: dict[str, object] = {}
    try:
        if "path" in pax:
            changes["name"] = pax["path"]
        if "linkpath" in pax:
            changes["linkname"] = pax["linkpath"]
        for key in ("size", "uid", "gid"):
            if key in pax:
                changes[key] = int(pax[key])
        for key in ("uname", "gname"):
            if key in pax:
                changes[key] = pax[key]
        if "mtime" in pax:
            changes["mtime"] = float(pax["mtime"])
    except ValueError:
        raise TarError(f"{member.name}: malformed PAX value") from None
    return replace(member, **changes)  # type: ignore[arg-type]


class TarStream:
    """Feed bytes with feed(); call finish() at the end of the stream."""

    def __init__(self, handler: TarHandler) -> None:
        self.handler = handler
        self._header = bytearray()
        self._remaining = 0  # member data still to come
        self._padding = 0
        self._meta: bytearray | None = None  # collecting a PAX header or GNU long name
        self._meta_type = b""
        self._pax: dict[str, str] = {}
        self._global: dict[str, str] = {}
        self._long_name: str | None = None
        self._long_link: str | None = None
        self._in_member = False
        self._zero_blocks = 0
        self.ended = False
        self.members = 0

    def feed(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        while len(view):
            if self.ended:
                if any(view):
                    # tarfile and GNU tar pad to a whole record with zeros; anything else
                    # after the end marker is not part of the archive.
                    raise TarError("data after the end-of-archive marker")
                return
            if self._remaining:
                step = min(self._remaining, len(view))
                piece, view = view[:step], view[step:]
                self._remaining -= step
                if self._meta is not None:
                    self._meta += piece
                elif self._in_member:
                    self.handler.data(piece)
                if not self._remaining:
                    self._member_data_done()
                continue
            if self._padding:
                step = min(self._padding, len(view))
                view = view[step:]
                self._padding -= step
                continue
            step = min(BLOCK - len(self._header), len(view))
            self._header += view[:step]
            view = view[step:]
            if len(self._header) == BLOCK:
                block = bytes(self._header)
                self._header.clear()
                self._on_header(block)

    def finish(self) -> None:
        """The stream ended: it must have ended with the end-of-archive marker."""
        if not self.ended:
            raise TarError(
                "the archive ends early (no end-of-archive marker): it is truncated"
                if not (self._remaining or self._header or self._in_member)
                else "the archive ends inside a member: it is truncated"
            )

    def _member_data_done(self) -> None:
        if self._meta is not None:
            raw, self._meta = bytes(self._meta), None
            if self._meta_type == tarfile.XHDTYPE:
                self._pax.update(_pax_records(raw))
            elif self._meta_type == tarfile.XGLTYPE:
                self._global.update(_pax_records(raw))
            else:
                text = raw.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
                if self._meta_type == tarfile.GNUTYPE_LONGNAME:
                    self._long_name = text
                else:
                    self._long_link = text
        elif self._in_member:
            self._in_member = False
            self.handler.end()

    def _member(self, info: tarfile.TarInfo) -> TarMember:
        """The member a header describes, with the long names and PAX records before it."""
        member = TarMember(
            name=info.name,
            kind=_KINDS.get(info.type, OTHER),
            type=info.type,
            size=info.size,
            mode=info.mode,
            uid=info.uid,
            gid=info.gid,
            uname=info.uname,
            gname=info.gname,
            mtime=float(info.mtime),
            linkname=info.linkname,
        )
        if self._long_name is not None:
            member = replace(member, name=self._long_name)
        if self._long_link is not None:
            member = replace(member, linkname=self._long_link)
        pax = {**self._global, **self._pax}
        if pax:
            member = _apply_pax(member, pax)
        self._pax, self._long_name, self._long_link = {}, None, None
        return member

    def _on_header(self, block: bytes) -> None:
        if block == bytes(BLOCK):
            self._zero_blocks += 1
            if self._zero_blocks == END_BLOCKS:
                self.ended = True
            return
        if self._zero_blocks:
            raise TarError("a zero block inside the archive: it is damaged")
        try:
            info = tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
        except tarfile.HeaderError as exc:
            raise TarError(f"invalid tar header after {self.members} members: {exc}") from None
        size = info.size
        self._padding = -size % BLOCK
        if info.type in _META_TYPES:
            if size > MAX_META:
                raise TarError(f"a {size}-byte extended header is not sane")
            self._meta = bytearray()
            self._meta_type = info.type
            self._remaining = size
            if not size:
                self._member_data_done()
            return
        member = self._member(info)
        if member.type == tarfile.GNUTYPE_SPARSE:
            raise TarError(f"{member.name}: sparse members are not supported")
        if member.kind != FILE:
            # Only regular files carry data; skip whatever else claims some.
            self._padding = -member.size % BLOCK
            self._remaining = member.size
            self.members += 1
            self.handler.begin(member)
            self.handler.end()
            return
        self._padding = -member.size % BLOCK
        self._remaining = member.size
        self._in_member = True
        self.members += 1
        self.handler.begin(member)
        if not member.size:
            self._in_member = False
            self.handler.end()
