"""pytest fixtures for PostgreSQL clusters and the pgvault executable the server runs."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.support.postgres import Cluster, make_cluster, pgvault_for_postgres


@pytest.fixture(scope="session")
def pgvault_bin() -> str:
    """A pgvault executable runnable by the postgres OS user (for archive/restore_command)."""
    return pgvault_for_postgres()


@pytest.fixture
def cluster_factory() -> Iterator[Callable[..., Cluster]]:
    """Make clusters with make_cluster()'s arguments; all are stopped and removed after."""
    made: list[Cluster] = []

    def factory(**kwargs: object) -> Cluster:
        cluster = make_cluster(**kwargs)  # type: ignore[arg-type]
        made.append(cluster)
        return cluster

    yield factory
    for cluster in made:
        cluster.drop()


@pytest.fixture
def pg(cluster_factory: Callable[..., Cluster]) -> Cluster:
    """A plain PostgreSQL 15 cluster (no WAL archiving)."""
    return cluster_factory()
