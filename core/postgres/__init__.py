"""PostgreSQL facts pgvault relies on: WAL names and LSNs, connections, the backup API."""
