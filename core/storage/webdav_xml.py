"""A PROPFIND answer (207 Multi-Status) read into entries: name, size, kind, time, ETag."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from urllib.parse import unquote, urlsplit

from core.errors import StorageError

DAV = "{DAV:}"


@dataclass(frozen=True)
class Entry:
    """One member of a collection as PROPFIND reports it."""

    path: str
    name: str
    collection: bool
    size: int = 0
    modified: datetime | None = None
    etag: str | None = None


def parse_multistatus(data: bytes) -> list[Entry]:
    """Every <response> of a multistatus body; hrefs may be paths or absolute URLs."""
    try:
        root = ET.fromstring(data)  # noqa: S314 - expat expands no external entities
    except ET.ParseError as exc:
        raise StorageError(f"the WebDAV server sent an unreadable listing ({exc})") from None
    entries = []
    for response in root.iter(f"{DAV}response"):
        href = response.findtext(f"{DAV}href") or ""
        path = unquote(urlsplit(href).path)
        prop = _ok_prop(response)
        if prop is None:
            continue
        kind = prop.find(f"{DAV}resourcetype")
        collection = kind is not None and kind.find(f"{DAV}collection") is not None
        entries.append(
            Entry(
                path=path,
                name=path.rstrip("/").rsplit("/", 1)[-1],
                collection=collection,
                size=int(prop.findtext(f"{DAV}getcontentlength") or 0),
                modified=_date(prop.findtext(f"{DAV}getlastmodified")),
                etag=prop.findtext(f"{DAV}getetag") or None,
            )
        )
    return entries


def _ok_prop(response: ET.Element) -> ET.Element | None:
    """The <prop> of the propstat whose status is 200 (servers list 404 props apart)."""
    for propstat in response.iter(f"{DAV}propstat"):
        status = propstat.findtext(f"{DAV}status") or ""
        if " 200 " in status + " ":
            return propstat.find(f"{DAV}prop")
    return None


def _date(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
