"""Logical backups: one database (or some of its tables) as pg_dump's directory format.

- layout: backup IDs (`YYYYMMDDTHHMMSSL`) and keys under `<server>/logical/`, where
  barman-cloud never looks
- manifest: `logical.json`, the backup's record, written last (a backup without it is
  not a backup)
- tools: the pg_dump/pg_restore matching a server's major version
- inventory: databases, table patterns, row estimates and sizes, as the server sees them
- dumper: pg_dump -Fd -j N into a bounded staging directory, each finished file uploaded
  and removed while pg_dump goes on
- backup, restore: the two operations; selection: which TOC entries a table restore needs
- catalog: list, show, delete; jobs: the job kinds
"""
