"""SDK exceptions to pgvault's storage errors: one table per provider, one translate function.

As httpx maps its transport's exceptions in one place, each cloud backend declares an
`ErrorTable`: ordered rules from an SDK exception class (narrowed by the provider's error
code, HTTP status or a test) to a core.errors class and its message. Every request runs
under `table.guard(what)`, which raises the translated error from the SDK's.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from core.errors import PgvaultError, own_cause

#: what a provider reads off an exception: "code" and "status" for matching, and any other
#: field its messages name
Facts = Mapping[str, Any]
SERVER_ERRORS = range(500, 1000)


@dataclass(frozen=True)
class Rule:
    """When an exception is one of `types` (and has one of `codes`, one of `statuses`, and
    passes `when`), it becomes `error` with `message` (a str.format template over the facts,
    `what`, `exc` and `name`, the exception's class name)."""

    error: type[PgvaultError]
    message: str
    types: tuple[type[BaseException], ...] = (Exception,)
    codes: Collection[str] | None = None
    statuses: Collection[int] | None = None
    when: Callable[[BaseException], bool] | None = None

    def matches(self, exc: BaseException, facts: Facts) -> bool:
        if not isinstance(exc, self.types):
            return False
        if self.codes is not None and facts.get("code") not in self.codes:
            return False
        status = facts.get("status")
        if self.statuses is not None and not (isinstance(status, int) and status in self.statuses):
            return False
        return self.when is None or self.when(exc)


def _no_facts(exc: BaseException) -> Facts:
    return {}


@dataclass(frozen=True)
class ErrorTable:
    """A provider's rules, first match wins; exceptions no rule matches pass unchanged."""

    rules: tuple[Rule, ...]
    facts: Callable[[BaseException], Facts] = _no_facts

    def translate(
        self, exc: BaseException, what: str, container: str | None = None
    ) -> PgvaultError | None:
        """The pgvault error for an SDK exception, or None when it is not the SDK's;
        `container`: the bucket or container asked, which `{named}` in a message names."""
        own = own_cause(exc)
        if own is not None:
            return own
        facts = self.facts(exc)
        for rule in self.rules:
            if rule.matches(exc, facts):
                fields = {**facts, "what": what, "exc": exc, "name": type(exc).__name__}
                # `what` names a key inside the bucket: a missing bucket is named apart
                fields["named"] = f" {container}" if container else ""
                return rule.error(rule.message.format(**fields))
        return None

    def guard(self, what: str, container: str | None = None) -> Guard:
        return Guard(self, what, container)


class Guard:
    """Translates the SDK exceptions raised inside a `with` block through a table."""

    def __init__(self, table: ErrorTable, what: str, container: str | None = None) -> None:
        self.table = table
        self.what = what
        self.container = container

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if isinstance(exc, Exception) and not isinstance(exc, PgvaultError):
            error = self.table.translate(exc, self.what, self.container)
            if error is not None:
                raise error from exc
