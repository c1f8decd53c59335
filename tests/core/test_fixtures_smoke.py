"""The test environment itself: a real cluster runs and pgvault is executable by postgres."""

from tests.support.postgres import Cluster, as_postgres


def test_cluster_runs_and_the_postgres_user_can_run_pgvault(pg: Cluster, pgvault_bin: str) -> None:
    assert pg.one("select 1") == 1
    assert pg.major >= 13
    result = as_postgres([pgvault_bin, "--version"])
    assert result.stdout.startswith("pgvault ")
