"""The console's screens: jobs (1), job detail, catalog (2), backup detail, WAL archive (3)."""
