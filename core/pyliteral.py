"""Python literals as barman writes them in backup.info, read safely from any thread."""

from __future__ import annotations

import ast
import threading
from typing import Any

# CPython 3.11 keeps the AST constructor's recursion depth in interpreter-wide state: two
# threads parsing at once can fail with "SystemError: AST constructor recursion depth
# mismatch" (gh-106905). The catalog reads backup.info files on a thread pool.
_PARSING = threading.Lock()


def literal(text: str) -> Any:
    """ast.literal_eval, one thread at a time."""
    with _PARSING:
        return ast.literal_eval(text)
