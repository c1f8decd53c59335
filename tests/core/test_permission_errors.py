"""Any PermissionError stands for PermissionDenied (exit 1): one line naming the file (or the
nearest directory that exists), its owner and mode, who pgvault runs as, and what to do."""

from __future__ import annotations

import errno
import os
import pwd
import shutil

from core.errors import ExitCode, OperationFailed, PermissionDenied, own_cause
from tests.support.postgres import PG_USER, ensure_postgres_user, world_dir
from tui.adapter import describe_error


def _refused(path: str) -> PermissionError:
    return PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)


def test_a_permission_error_names_the_file_its_owner_and_what_to_do() -> None:
    ensure_postgres_user()
    me = pwd.getpwuid(os.geteuid()).pw_name
    base = world_dir("pgvault-perm-")  # postgres's, 0755
    try:
        inner = os.path.join(base, "backup.info")
        open(inner, "w").close()
        postgres = pwd.getpwnam(PG_USER)
        os.chown(inner, postgres.pw_uid, postgres.pw_gid)
        os.chmod(inner, 0o600)
        cause = own_cause(_refused(inner))
        assert isinstance(cause, PermissionDenied) and cause.exit_code == ExitCode.FAILED
        assert isinstance(cause, OperationFailed)
        owner = "postgres" if me != PG_USER else me
        assert str(cause).startswith(f"permission denied on {inner} (owned by {owner}")
        assert "mode 0600" in str(cause) and "\n" not in str(cause)

        # A path that does not exist yet: the directory that refused it is named.
        missing = os.path.join(base, "pg1", "base")
        text = str(own_cause(_refused(missing)))
        assert text.startswith(f"permission denied on {missing}: {base} (owned by"), text
        if me != PG_USER:
            assert f"pgvault runs as {me}): run pgvault as postgres" in text, text
            # only what is created is handed over, never the existing parent (it was
            # "chown -R postgres /" for a destination file:///nonexistent/dir)
            made = os.path.join(base, "pg1")
            assert f"or create it for {me} (mkdir -p {missing} && chown -R {me} {made})" in text

        # Raised from inside another error, and in the console's one-line form.
        wrapped = RuntimeError("wrapped")
        wrapped.__cause__ = _refused(inner)
        assert isinstance(own_cause(wrapped), PermissionDenied)
        assert describe_error(_refused(inner)) == str(own_cause(_refused(inner)))
    finally:
        shutil.rmtree(base, ignore_errors=True)
