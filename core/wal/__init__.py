"""WAL archiving and WAL restore for PostgreSQL's archive_command and restore_command.

- `header`: what a WAL file must look like (segment page header, history, backup label)
- `archive`: store one WAL file in barman-cloud's layout, never overwriting different bytes
- `archive_command`: the typed requests of `wal-archive`; archive now, or through the pusher
- `spool`, `pusher`, `daemon` and `ack`: the fast path (a local spool, a background pusher
  and its process, and the acknowledgement archive_command makes without heavy imports)
- `jobs`: the pusher's batches recorded as wal-push jobs
- `restore`: fetch a WAL file for restore_command, verified before PostgreSQL sees it
- `check`, `cleanup`: check-wal-archive and the gap check; the WAL a deletion frees
- `files`, `errors`: file identity, private directories, and the errors with their exit codes
"""
