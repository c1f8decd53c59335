"""The demo's commands as the postgres OS user, from a root shell whatever its PATH."""

from __future__ import annotations

import os
import pwd
import subprocess

import pytest

from core import demo


@pytest.mark.skipif(os.geteuid() != 0, reason="the demo switches user only when run as root")
def test_a_root_shell_without_sbin_in_its_path_still_runs_the_demo_as_postgres(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Found by running `pgvault --demo` as root with PATH=/usr/bin:/bin (Debian's `su`
    # without `-` keeps such a PATH): "demo: cannot start the demo server: [Errno 2] No such
    # file or directory: 'runuser'" (runuser and useradd live in /usr/sbin).
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    argv = demo._as_user(["id", "-u"], demo.PG_USER)
    out = subprocess.run(argv, capture_output=True, text=True, check=True, cwd="/")
    assert out.stdout.strip() == str(pwd.getpwnam(demo.PG_USER).pw_uid)
