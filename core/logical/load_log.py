"""Which tables' data pg_restore has loaded, from its --verbose log as it runs.

pg_restore -j N (N >= 2) logs `finished item ID TABLE DATA tag` as each table's data is
loaded. A serial restore (-j 1) logs no finished item, only `processing data for table
"schema.name"` as each table's data starts (PostgreSQL 13 to 18 alike): the table before is
loaded once the next item starts (the next table's data, a sequence value, the post-data
indexes and constraints) or pg_restore ends.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping

from core.logical.manifest import TableEntry
from core.logical.selection import table_data_tags

_FINISHED = re.compile(r"finished item (\d+) TABLE DATA ")
_PROCESSING = re.compile(r'^pg_restore: processing data for table "(.*)"$')
#: an item of a serial restore starting: the table data before it is loaded
_NEXT_ITEM = re.compile(r"^pg_restore: (creating|executing|processing) ")


def table_data_ids(listing: str, tables: Iterable[TableEntry]) -> dict[str, int]:
    """Dump ID of each TABLE DATA entry of a `pg_restore -l` listing, by the "schema.name"
    a serial pg_restore logs. pg_restore -l separates schema and name by a space: the
    manifest's tables tell a space in a name from that one."""
    spaced = {f"{t.schema} {t.name}": t.qualified for t in tables}
    ids = {}
    for dump_id, tag in table_data_tags(listing):
        qualified = spaced.get(tag) or (tag.replace(" ", ".") if tag.count(" ") == 1 else None)
        if qualified is not None:
            ids[qualified] = dump_id
    return ids


class LoadLog:
    """Hands `on_loaded` the dump ID of each table whose data pg_restore has loaded (None
    when a serial restore names a table the listing did not)."""

    def __init__(
        self, serial: bool, ids: Mapping[str, int], on_loaded: Callable[[int | None], None]
    ) -> None:
        self.serial, self.ids, self.on_loaded = serial, ids, on_loaded
        self.loading: str | None = None  # the table whose data a serial restore is loading

    def line(self, line: str) -> None:
        line = line.rstrip()
        if not self.serial:
            found = _FINISHED.search(line)
            if found is not None:
                self.on_loaded(int(found[1]))
            return
        if _NEXT_ITEM.match(line):
            self.ended()
            started = _PROCESSING.match(line)
            self.loading = started[1] if started else None

    def ended(self) -> None:
        """pg_restore has exited successfully: the last table it loaded is loaded."""
        if self.loading is not None:
            self.on_loaded(self.ids.get(self.loading))
            self.loading = None
