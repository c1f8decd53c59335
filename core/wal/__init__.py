"""WAL archiving and WAL restore for PostgreSQL's archive_command and restore_command.

- `header`: what a WAL file must look like (segment page header, history, backup label)
- `archive`: store one WAL file in barman-cloud's layout, never overwriting different bytes
- `spool`, `pusher` and `ack`: the fast path (a local spool, a background pusher, and the
  acknowledgement archive_command makes without heavy imports)
- `restore`: fetch a WAL file for restore_command, verified before PostgreSQL sees it
- `check`: check-wal-archive and the gap check over every backup
- `files`, `errors`: file identity, private directories, and the errors with their exit codes
"""
