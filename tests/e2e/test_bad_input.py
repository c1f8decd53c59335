"""Generated bad invocations of every batch command: the seeds' exit code, never a traceback.

Several hundred malformed invocations (URLs, server and backup names, sizes, counts, tags,
recovery targets, retention policies, job ids, flags of another provider) run in-process
through `tui.cli.main`, as the executable runs them; well-formed ones that fail (absent
backups, corrupt catalog files) exit 1; the unreachable clouds run through the executable.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest

from tests.support.bad_input import (
    Case,
    World,
    bad_input_cases,
    environment,
    make_world,
    operation_cases,
    unreachable_cases,
)
from tests.support.cli import pgvault
from tests.support.emulators import free_port
from tui.batch.main import COMMANDS
from tui.cli import main

# The world's paths are fixed for collection; the fixture builds them under tmp.
_COLLECT = World(Path("/nonexistent-bad-input-world"))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return make_world(tmp_path_factory.mktemp("bad-input"))


@pytest.fixture
def world_env(world: World, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    for key, value in environment(world).items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "GOOGLE_APPLICATION_CREDENTIALS"):
        monkeypatch.delenv(key, raising=False)
    yield world


def _in_world(case: Case, world: World) -> tuple[str, ...]:
    """The case's argv with the collection-time world replaced by the real one."""
    return tuple(a.replace(str(_COLLECT.root), str(world.root)) for a in case.argv)


def invoke(argv: tuple[str, ...], world: World) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["--state-dir", world.state_dir, "--batch", *argv])
    return code, out.getvalue(), err.getvalue()


def assert_clean(case: Case, code: int, err: str) -> None:
    assert "Traceback" not in err, err
    assert "unexpected error" not in err, err
    assert code == case.code, f"{case.argv!r} exited {code}, not {case.code}: {err}"
    if case.says is not None:
        assert case.says in err, f"{case.argv!r}: the error does not name {case.says}: {err}"
    # restore_command's "not archived" is quiet at the default verbosity, as barman-cloud's
    if case.argv[:1] != ("wal-restore",) or code != 1:
        lines = [line for line in err.splitlines() if line.strip()]
        assert lines, f"{case.argv!r} exited {code} without saying why"


BAD = bad_input_cases(_COLLECT)


def test_the_generator_covers_every_command() -> None:
    assert len(BAD) >= 500
    named = {case.argv[0] for case in BAD if case.argv}
    assert named >= set(COMMANDS), set(COMMANDS) - named


@pytest.mark.parametrize("case", BAD, ids=[c.id for c in BAD])
def test_bad_input_exits_3_with_one_line(case: Case, world_env: World) -> None:
    code, _, err = invoke(_in_world(case, world_env), world_env)
    assert_clean(case, code, err)
    assert err.lstrip().startswith("pgvault"), err


OPERATIONS = operation_cases(_COLLECT)


@pytest.mark.parametrize("case", OPERATIONS, ids=[c.id for c in OPERATIONS])
def test_well_formed_request_exits_with_its_outcome(case: Case, world_env: World) -> None:
    code, _, err = invoke(_in_world(case, world_env), world_env)
    assert_clean(case, code, err)


def test_nothing_bad_reached_the_catalog(world_env: World) -> None:
    """After every case: the one good backup is still listed, and nothing was written."""
    catalog = world_env.root / "catalog"
    written = sorted(str(p.relative_to(catalog)) for p in catalog.rglob("*") if p.is_file())
    assert written == [
        "broken/base/20260101T000000/backup.info",
        "broken/base/20260102T000000/backup.info",
        "broken/base/20260102T000000/pgvault.json",
        "pg1/base/20260105T101500/backup.info",
        "pg1/base/20260105T101500/data.tar",
    ]


_UNREACHABLE_PORT = free_port()  # bound and closed: nothing listens
UNREACHABLE = unreachable_cases(_COLLECT, _UNREACHABLE_PORT)
TESTS_ONLY = [case for case in UNREACHABLE if "-t" in case.argv]


def _port_free_id(case: Case) -> str:
    """The case's id without the port: each pytest-xdist worker collects its own free port,
    and workers must collect the same ids."""
    here = f"127.0.0.1:{_UNREACHABLE_PORT}"
    return replace(case, argv=tuple(a.replace(here, "127.0.0.1:PORT") for a in case.argv)).id


@pytest.mark.parametrize("case", TESTS_ONLY, ids=[_port_free_id(c) for c in TESTS_ONLY])
def test_unreachable_cloud_exits_2_on_test(case: Case, world_env: World) -> None:
    """-t tries once: in-process, every provider and command."""
    code, _, err = invoke(_in_world(case, world_env), world_env)
    assert_clean(case, code, err)


def test_unreachable_cloud_exits_2_after_retries(world: World) -> None:
    """Through the executable, a pool at a time: the store's retries sleep, not compute."""
    cases = [case for case in UNREACHABLE if "-t" not in case.argv]
    env = environment(world) | {"PGVAULT_STATE_DIR": world.state_dir}

    def run(case: Case) -> tuple[Case, int, str]:
        result = pgvault(*_in_world(case, world), env=env, timeout=300)
        return case, result.returncode, result.stderr

    with ThreadPoolExecutor(max_workers=len(cases)) as pool:
        outcomes = list(pool.map(run, cases))
    wrong = [
        (case.argv, code, err.strip().splitlines()[-1:])
        for case, code, err in outcomes
        if code != case.code or "Traceback" in err or "unexpected error" in err
    ]
    assert not wrong, wrong


# ---- help ---------------------------------------------------------------------------------------


def test_pgvault_help_says_usage_once(world_env: World) -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["--help"]) == 0
    assert out.getvalue().startswith("usage: pgvault [--version]"), out.getvalue()
    assert "usage: usage:" not in out.getvalue()


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_command_prints_help(command: str, world_env: World) -> None:
    """--help everywhere; -h too, except for backup, where -h is --host (as barman-cloud's)."""
    flags = ["--help"] if command == "backup" else ["--help", "-h"]
    for flag in flags:
        code, out, err = invoke((command, flag), world_env)
        assert code == 0, err
        assert out.startswith(f"usage: pgvault --batch {command}"), out
        assert "-h, --help" in out or command == "backup", out
    if command == "backup":
        code, _, err = invoke((command, "-h"), world_env)
        assert code == 3, err
        assert "-h/--host: expected one argument" in err, err


def test_archive_and_restore_command_help_by_the_executable() -> None:
    """The seeds list -h for wal-archive and wal-restore: the real executable answers it."""
    for command in ("wal-archive", "wal-restore"):
        result = pgvault(command, "-h")
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith(f"usage: pgvault --batch {command}"), result.stdout
