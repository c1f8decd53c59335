"""backup.info's snapshots_info: barman's text read and written back byte for byte."""

from __future__ import annotations

import pytest

from core.errors import OperationFailed
from core.snapshots.info import dump, load

# As barman 3.19's AwsSnapshotsInfo / GcpSnapshotsInfo write it (repr of to_dict()).
AWS = (
    "{'provider': 'aws', 'provider_info': {'account_id': '123456789012', 'region': "
    "'us-east-1'}, 'snapshots': [{'mount': {'mount_options': 'rw,noatime', 'mount_point': "
    "'/opt/disk0'}, 'provider': {'device_name': '/dev/sdf', 'snapshot_id': 'snap-0d0', "
    "'snapshot_name': 'disk0-20260101t000000', 'snapshot_lock_mode': None}}]}"
)
GCP = (
    "{'provider': 'gcp', 'provider_info': {'project': 'p1'}, 'snapshots': [{'mount': "
    "{'mount_options': 'rw', 'mount_point': '/pg'}, 'provider': {'device_name': 'dev0', "
    "'snapshot_name': 'dev0-20260101t000000', 'snapshot_project': 'p1'}}]}"
)


@pytest.mark.parametrize("text", [AWS, GCP])
def test_barman_text_round_trips(text: str) -> None:
    info = load(text)
    assert dump(info) == text
    [snapshot] = info.snapshots
    assert info.identifier(snapshot) in ("snap-0d0", "dev0-20260101t000000")


@pytest.mark.parametrize("text", ["{'provider': 'ibm', 'snapshots': []}", "not python", "[1]"])
def test_unreadable_text_is_an_operation_failure(text: str) -> None:
    with pytest.raises(OperationFailed, match="unreadable snapshots_info"):
        load(text)
