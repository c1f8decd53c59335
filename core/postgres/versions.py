"""The PostgreSQL releases that changed what pgvault does, by server_version_num."""

from __future__ import annotations

#: idle_session_timeout exists (a backup session must switch it off)
IDLE_SESSION_TIMEOUT = 140000
#: pg_backup_start/pg_backup_stop replace pg_start_backup/pg_stop_backup; archive_library;
#: the cumulative statistics system (no stats_temp_directory)
BACKUP_FUNCTIONS_RENAMED = 150000
#: WAL summaries (summarize_wal, pg_wal/summaries) and backup_manifest version 2;
#: pg_stat_checkpointer (buffers_written) takes the checkpointer's columns of pg_stat_bgwriter
WAL_SUMMARIES = 170000
STAT_CHECKPOINTER = 170000


def major(version_num: int) -> int:
    """The major release of a server_version_num (150018 -> 15)."""
    return version_num // 10000
