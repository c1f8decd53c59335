"""One pgvault command timed: wall, CPU (user + sys of it and its children) and its phases.

    timed(["backup", ...], env) -> Timed

The command runs with -vv, so that each phase it enters is logged ("phase: NAME") on
stderr; each line is stamped as it arrives, and `Timed.phases` holds each phase's seconds
(from its line to the next one's, or to the exit). CPU times come from getrusage of this
process's waited-for children, taken just before and after, so nothing else may run a
child process meanwhile (the benches call it from one thread). `--baseline TREE` runs are
the same command with PYTHONPATH=TREE: another checkout's code, the same executable.
"""

from __future__ import annotations

import os
import resource
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from tests.support.cli import PGVAULT

PHASE = "phase: "


@dataclass(frozen=True)
class Timed:
    """What one run took; stdout for its printed result."""

    wall: float
    cpu: float  # user + sys, every process of the command
    stdout: str
    phases: dict[str, float] = field(default_factory=dict)  # name -> seconds (summed)

    def phase(self, prefix: str) -> float:
        """The seconds spent in phases whose name starts with `prefix`."""
        return sum(s for name, s in self.phases.items() if name.startswith(prefix))


def env_for(tree: str | None, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a run of `tree`'s code (None: this checkout's)."""
    env = {**os.environ, **(base or {})}
    if tree:
        env["PYTHONPATH"] = tree
    return env


def timed(args: list[str], env: Mapping[str, str], timeout: float = 3600) -> Timed:
    """`pgvault --batch -vv ARGS`, timed; SystemExit with its stderr when it fails."""
    command, *rest = args
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    process = subprocess.Popen(
        [PGVAULT, "--batch", command, "-vv", *rest],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(env),
    )
    assert process.stderr is not None and process.stdout is not None
    marks: list[tuple[str, float]] = []
    tail: list[str] = []
    for line in process.stderr:  # until the command closes stderr (it exits)
        at = line.find(PHASE)
        if at >= 0:
            marks.append((line[at + len(PHASE) :].strip(), time.monotonic()))
        tail = [*tail[-40:], line]
    stdout = process.stdout.read()
    code = process.wait(timeout=timeout)
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if code != 0:
        raise SystemExit(f"pgvault {command} failed ({code}):\n{''.join(tail)}")
    phases: dict[str, float] = {}
    ends = [t for _, t in marks[1:]] + [started + wall]
    for (name, begun), ended in zip(marks, ends, strict=True):
        phases[name] = phases.get(name, 0.0) + ended - begun
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Timed(wall, cpu, stdout, phases)


__all__ = ["Timed", "env_for", "timed"]
