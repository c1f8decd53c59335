"""pgvault's engine: storage, backups, WAL, catalog and jobs. Never imports a UI toolkit."""

__version__ = "0.1.0"
