"""Real WAL written by PostgreSQL for the end-to-end WAL tests."""

from tests.support.wal import wal_sample

__all__ = ["wal_sample"]
