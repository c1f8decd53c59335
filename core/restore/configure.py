"""The configure-recovery phase: restore_command's directory, credentials, settings, signal.

What the settings say is core.restore.recovery's; this phase puts them in place for the
data directory's owner: restore_command's directory (its credentials file and WAL spool),
the settings appended to postgresql.auto.conf, and recovery.signal.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import replace

from core.credentials_file import StoredCredentials, write_credentials
from core.encryption import (
    credentials_environment,
    current_credentials,
    keys_to_hand,
    load_keyfile,
)
from core.restore.cleanup import make_dir
from core.restore.extract import write_file
from core.restore.recovery import (
    CREDENTIALS_FILE,
    SPOOL_DIR,
    capture_credentials,
    command_line,
    recovery_settings,
    settings_text,
    wal_restore_argv,
    without_earlier_settings,
)
from core.restore.state import RestoreRun


def configure_recovery(run: RestoreRun) -> None:
    """The phase: restore_command set up, the recovery settings and recovery.signal written."""
    run.reporter.phase("writing the recovery settings")
    request = run.request
    credentials, drop_profile, notes = capture_credentials(
        request.location, request.store_config, request.wal_credentials
    )
    run.warnings += notes
    credentials = _with_decryption(run, credentials)
    wal_dir = run.paths.wal_dir
    if os.path.isdir(wal_dir):
        run.emptied.append(wal_dir)
    else:
        make_dir(run, wal_dir, True)
    run.own(wal_dir)
    os.chmod(wal_dir, 0o700)
    credentials_file = None
    if not credentials.is_empty():
        credentials_file = os.path.join(wal_dir, CREDENTIALS_FILE)
        run.wal_files.append(credentials_file)
        write_credentials(credentials_file, credentials, *(run.file_owner or (None, None)))
    argv = wal_restore_argv(
        run.paths.pgvault,
        request.location,
        request.server,
        request.store_config,
        request.wal_prefetch,
        _spool_dir(run),
        credentials_file,
        drop_profile,
    )
    run.restore_command = command_line(argv)
    run.credentials_file = credentials_file
    _write_settings(run)


def _with_decryption(run: RestoreRun, credentials: StoredCredentials) -> StoredCredentials:
    """An encrypted server: restore_command gets what unlocked it here, and the data keys
    it unlocked, so that no wal-restore repeats the scrypt (file mode only)."""
    if run.request.wal_credentials == "environment":
        return credentials
    server = run.request.server
    keyfile = load_keyfile(run.store, server)
    if keyfile is None:
        return credentials
    keys = keys_to_hand(run.store, server)
    if keys is None:  # a backup from before `keys init`, restored without a key
        run.warnings.append(
            f"server {server} encrypts its WAL since its key file was made "
            f"({keyfile.generations[0].created}) and this restore holds no key: recovery "
            "will stop at the first encrypted segment; restore again with "
            "--encryption-passphrase-file or --identity-file"
        )
    extra = credentials_environment(current_credentials(), keys)
    return replace(credentials, environment={**credentials.environment, **extra})


def _spool_dir(run: RestoreRun) -> str | None:
    """wal-restore's prefetch spool (with -p 2 and more), inside restore_command's directory."""
    if run.request.wal_prefetch <= 1:
        return None
    spool = os.path.join(run.paths.wal_dir, SPOOL_DIR)
    if not os.path.isdir(spool):
        os.mkdir(spool, 0o700)
        run.wal_files.append(spool)
    run.own(spool)
    return spool


def _write_settings(run: RestoreRun) -> None:
    request = run.request
    info = run.plan.info
    end_command = None
    if run.credentials_file:
        # The credentials serve recovery only: removed once the server is promoted.
        end_command = f"rm -f -- {shlex.quote(run.credentials_file)}"
    settings = recovery_settings(
        request.target, run.restore_command, request.archive_mode, end_command, info.version
    )
    if request.port is not None:
        # The restored configuration listens where the source did: on the same host the
        # restored server could not start beside it.
        settings.append(("port", str(request.port)))
    text = settings_text(settings, info.backup_id, request.server)
    auto_conf = os.path.join(run.pgdata, "postgresql.auto.conf")
    try:
        with open(auto_conf, encoding="utf-8", errors="surrogateescape") as fh:
            earlier = without_earlier_settings(fh.read(), {name for name, _ in settings})
    except FileNotFoundError:
        earlier = ""
    with open(auto_conf, "w", encoding="utf-8", errors="surrogateescape") as fh:
        fh.write(earlier + text)
    run.own(auto_conf)
    write_file(os.path.join(run.pgdata, "recovery.signal"), b"", run.file_owner)
    run.syncer.add(auto_conf)


__all__ = ["configure_recovery"]
