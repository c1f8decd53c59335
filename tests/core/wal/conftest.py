"""Real WAL written by PostgreSQL for the WAL tests."""

from tests.support.wal import scratch_dirs, wal_sample

__all__ = ["scratch_dirs", "wal_sample"]
