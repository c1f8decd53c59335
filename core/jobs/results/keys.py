"""The keys job's result: what one key change did to a server's key file (all public).

Recipients are named by their public `age1...` strings; the passphrase only by what
happened to its wrap. No passphrase, identity or data key is ever part of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from core.jobs.results.fields import Fields


@dataclass(frozen=True)
class KeysJobResult:
    server: str
    action: str  # init, rotate, rewrap
    generation: int  # the current data key's generation after the change
    recipients_added: tuple[str, ...]  # operator recipients (age1...) that can now unwrap
    recipients_removed: tuple[str, ...]  # operator recipients that no longer can
    #: what happened to the passphrase wrap: set, changed, kept, removed or none (the key
    #: is not "passphrase": the store masks the values of keys named so)
    passphrase_wrap: str
    lines: tuple[str, ...]  # the key file as `keys show` prints it
    summary: str

    @classmethod
    def from_json(cls, data: Mapping[str, object]) -> KeysJobResult:
        f = Fields(data)
        return cls(
            server=f.text("server"),
            action=f.text("action"),
            generation=f.number("generation"),
            recipients_added=f.texts("recipients_added"),
            recipients_removed=f.texts("recipients_removed"),
            passphrase_wrap=f.text("passphrase_wrap"),
            lines=f.texts("lines"),
            summary=f.text("summary"),
        )

    def to_json(self) -> dict[str, object]:
        return {
            "server": self.server,
            "action": self.action,
            "generation": self.generation,
            "recipients_added": list(self.recipients_added),
            "recipients_removed": list(self.recipients_removed),
            "passphrase_wrap": self.passphrase_wrap,
            "lines": list(self.lines),
            "summary": self.summary,
        }
