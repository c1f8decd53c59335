"""The batch face and the engine never load Textual or rich (checked in fresh interpreters)."""

from __future__ import annotations

import subprocess
import sys

import pytest

PROBE = """
import sys
{body}
loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich'))
print(','.join(loaded))
"""


def _loaded_ui_modules(body: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", PROBE.format(body=body)], capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


@pytest.mark.parametrize(
    "body",
    [
        "import core, core.storage, core.codecs, core.progress, core.catalog.layout,"
        " core.catalog.backup_info",
        "import tui.cli, tui.batch.main",
        # The whole --batch path, through the real entry point, for a command that runs.
        "from tui.cli import main\n"
        "main(['--batch', 'backup', '-t', 'file:///tmp/pgvault-hygiene', 'pg'])",
    ],
)
def test_batch_path_never_imports_textual_or_rich(body: str) -> None:
    assert _loaded_ui_modules(body) == ""


def test_every_core_module_imports_without_a_ui_toolkit() -> None:
    import pkgutil

    import core

    names = [m.name for m in pkgutil.walk_packages(core.__path__, "core.")]
    assert _loaded_ui_modules("\n".join(f"import {n}" for n in names)) == ""


def test_every_batch_command_module_imports_without_a_ui_toolkit() -> None:
    import pkgutil

    import tui.batch

    names = [m.name for m in pkgutil.walk_packages(tui.batch.__path__, "tui.batch.")]
    assert "tui.batch.backup" in names
    assert _loaded_ui_modules("\n".join(f"import {n}" for n in names)) == ""
