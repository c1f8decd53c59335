"""Who owns the restored data directory, and whether that user can run restore_command.

Not as root, everything is ours, and restore_command is checked before any download. As
root, files keep the owners their archives record; the data directory's owner is known
when its archive's root entry arrives, and restore_command is checked as that user then
(PostgreSQL runs it as the data directory's owner).
"""

from __future__ import annotations

import os
import pwd
import subprocess

from core.errors import InputError
from core.postgres.server import run_as
from core.restore.state import RestoreRun


def check_runnable(command: str, uid: int, gid: int, needs_credentials: bool) -> None:
    """Run `COMMAND --batch wal-restore --help` as the data directory's owner."""
    who = f"uid {uid}"
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
    groups: list[int] = []
    if uid != os.geteuid():
        try:
            user = pwd.getpwuid(uid)
            who = f"{user.pw_name} (uid {uid})"
            groups = os.getgrouplist(user.pw_name, gid)
            env["HOME"] = user.pw_dir
        except KeyError:
            pass
    argv = [command, "--batch", "wal-restore", "--help"]
    try:
        result = run_as(argv, (uid, gid), env=env, cwd="/", timeout=120, groups=groups)
        usable = result.returncode == 0 and "--abort-on-error" in result.stdout
        if needs_credentials:
            usable = usable and "--credentials-file" in result.stdout
        reason = (result.stderr.strip().splitlines() or ["no usable wal-restore"])[-1]
    except (OSError, subprocess.SubprocessError) as exc:
        usable, reason = False, str(exc)
    if not usable:
        raise InputError(
            f"restore_command would run {command} as {who}, the owner of the restored data "
            f"directory, and that fails ({reason}): install pgvault where that user can run "
            "it and pass --pgvault-command PATH"
        )


def check_command_early(run: RestoreRun) -> None:
    """The phase before any download: check restore_command now, or once the owner is known."""
    if run.as_root:

        def on_root_owner(uid: int, gid: int) -> None:
            if uid != 0:
                check_runnable(run.paths.pgvault, uid, gid, True)
            run.command_checked = True

        run.files.on_root_owner = on_root_owner
    else:
        check_runnable(run.paths.pgvault, os.geteuid(), os.getegid(), True)
        run.command_checked = True


def settle_owner(run: RestoreRun) -> None:
    """The phase after extraction: the data directory's owner, restore_command checked."""
    if not run.as_root:
        owner = os.geteuid(), os.getegid()
    elif run.files.root_owner is not None:
        owner = run.files.root_owner
    else:
        st = os.stat(os.path.join(run.pgdata, "PG_VERSION"))
        owner = st.st_uid, st.st_gid
    if not run.command_checked:
        check_runnable(run.paths.pgvault, owner[0], owner[1], True)
        run.command_checked = True
    run.settled_owner = owner


__all__ = ["check_command_early", "check_runnable", "settle_owner"]
