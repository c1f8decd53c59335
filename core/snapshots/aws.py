"""EBS snapshots through the EC2 API (boto3), as barman-cloud's AwsCloudSnapshotInterface.

The instance is found by ID or by its Name tag (any state but terminated), a disk by volume
ID or Name tag among the volumes attached to it; the root volume never counts. Snapshots are
named `<disk>-<backup id lowercased>` in a Name tag, then awaited until `completed`. The
endpoint is the SDK's: AWS_ENDPOINT_URL_EC2 (or AWS_ENDPOINT_URL) points it elsewhere.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from core.errors import (
    AccessDenied,
    EndpointUnreachable,
    InputError,
    OperationFailed,
    PgvaultError,
)
from core.snapshots.mounts import Mount, mount_of_device
from core.snapshots.provider import Instance, Taken, Volume

ALLOWED_STATES = ["pending", "running", "shutting-down", "stopping", "stopped"]
MAX_POLL = 15.0  # seconds between DescribeSnapshots calls, barman's waiter delay


@contextmanager
def _aws(what: str) -> Iterator[None]:
    """boto3's errors as pgvault's, naming what was being done."""
    import botocore.exceptions as bce

    try:
        yield
    except PgvaultError:
        raise
    except bce.ClientError as exc:
        err = exc.response.get("Error", {})
        code, message = err.get("Code", "?"), err.get("Message", "")
        if code in ("AuthFailure", "UnauthorizedOperation", "AccessDenied"):
            raise AccessDenied(f"{what}: access denied ({code})") from None
        raise OperationFailed(f"{what}: {code}: {message}") from None
    except (bce.EndpointConnectionError, bce.ConnectTimeoutError) as exc:
        raise EndpointUnreachable(f"{what}: cannot reach the EC2 endpoint ({exc})") from None
    except (bce.NoCredentialsError, bce.PartialCredentialsError) as exc:
        raise AccessDenied(f"{what}: no AWS credentials found ({exc})") from None
    except bce.NoRegionError:
        raise InputError(f"{what}: no AWS region: pass --aws-region") from None
    except bce.ProfileNotFound as exc:
        raise InputError(str(exc)) from None
    except bce.BotoCoreError as exc:
        raise OperationFailed(f"{what}: {exc}") from None


class Ec2:
    """One region's EC2 API, as a core.snapshots.provider.SnapshotProvider."""

    kind = "aws"
    what = "EC2 instance"

    def __init__(self, region: str | None, profile: str | None = None) -> None:
        self.account_id = ""  # the snapshots' owner, known once one is created
        with _aws("connecting to EC2"):
            import boto3

            session = boto3.Session(profile_name=profile)
            self.region = region or session.region_name
            self.client: Any = session.client("ec2", region_name=self.region)

    def instance(self, identifier: str) -> Instance:
        """The instance by ID or Name tag; OperationFailed (exit 1) naming it when absent."""
        with _aws(f"looking up EC2 instance {identifier}"):
            resp = None
            if identifier.startswith("i-"):
                import botocore.exceptions as bce

                try:
                    resp = self.client.describe_instances(
                        InstanceIds=[identifier],
                        Filters=[{"Name": "instance-state-name", "Values": ALLOWED_STATES}],
                    )
                except bce.ClientError as exc:
                    code = exc.response.get("Error", {}).get("Code")
                    if code == "InvalidInstanceID.NotFound":
                        resp = {"Reservations": []}
                    elif code != "InvalidInstanceID.Malformed":
                        raise
            if resp is None:
                resp = self.client.describe_instances(
                    Filters=[
                        {"Name": "tag:Name", "Values": [identifier]},
                        {"Name": "instance-state-name", "Values": ALLOWED_STATES},
                    ]
                )
        found = [i for r in resp["Reservations"] for i in r["Instances"]]
        if not found:
            raise OperationFailed(
                f"cannot find EC2 instance {identifier} in region {self.region} "
                "(by instance ID or Name tag)"
            )
        if len(found) > 1:
            raise OperationFailed(f"more than one EC2 instance matches {identifier}")
        meta = found[0]
        return Instance(
            meta["InstanceId"],
            meta.get("RootDeviceName"),
            meta.get("VirtualizationType") == "paravirtual",
        )

    def attached(self, instance: Instance) -> list[Volume]:
        """The non-root volumes attached to the instance."""
        with _aws(f"listing the volumes of EC2 instance {instance.instance_id}"):
            volumes = self.client.describe_volumes(
                Filters=[{"Name": "attachment.instance-id", "Values": [instance.instance_id]}]
            )["Volumes"]
        result = []
        for volume in volumes:
            attachment = next(
                (a for a in volume["Attachments"] if a["InstanceId"] == instance.instance_id),
                None,
            )
            if attachment is None or attachment["Device"] == instance.root_device:
                continue
            tags = {t["Key"]: t["Value"] for t in volume.get("Tags", [])}
            result.append(
                Volume(
                    volume_id=volume["VolumeId"],
                    name=tags.get("Name"),
                    device=attachment["Device"],
                    source_snapshot=volume.get("SnapshotId") or None,
                )
            )
        return result

    def mount_of(self, volume: Volume, instance: Instance) -> Mount | None:
        return mount_of_device(volume.device, volume.volume_id, instance.paravirtual)

    def provider_info(self) -> tuple[tuple[str, Any], ...]:
        return (("account_id", self.account_id), ("region", self.region))

    def create_snapshot(
        self, volume: Volume, name: str, tags: tuple[tuple[str, str], ...]
    ) -> Taken:
        """Start a snapshot of the volume, tagged Name=name (and --tags)."""
        all_tags = [{"Key": "Name", "Value": name}, *({"Key": k, "Value": v} for k, v in tags)]
        with _aws(f"creating snapshot {name} of volume {volume.volume_id}"):
            resp = self.client.create_snapshot(
                VolumeId=volume.volume_id,
                TagSpecifications=[{"ResourceType": "snapshot", "Tags": all_tags}],
            )
        if resp.get("State") == "error":
            raise OperationFailed(f"snapshot {name} of volume {volume.volume_id} failed")
        self.account_id = str(resp.get("OwnerId", ""))
        snapshot_id = str(resp["SnapshotId"])
        fields = (
            ("device_name", volume.device),
            ("snapshot_id", snapshot_id),
            ("snapshot_name", name),
            ("snapshot_lock_mode", None),
        )
        return Taken(snapshot_id, fields)

    def delete_snapshot(self, snapshot_id: str) -> bool:
        """Delete a snapshot; False when it was already gone."""
        import botocore.exceptions as bce

        with _aws(f"deleting snapshot {snapshot_id}"):
            try:
                self.client.delete_snapshot(SnapshotId=snapshot_id)
            except bce.ClientError as exc:
                if exc.response.get("Error", {}).get("Code") == "InvalidSnapshot.NotFound":
                    return False
                raise
        return True

    def await_ready(
        self, snapshot_ids: list[str], timeout: float, checkpoint: Callable[[], None]
    ) -> None:
        """Wait until every snapshot is completed; OperationFailed on error or timeout."""
        deadline = time.monotonic() + timeout
        delay = 0.5
        while True:
            with _aws("waiting for snapshots"):
                snapshots = self.client.describe_snapshots(SnapshotIds=snapshot_ids)["Snapshots"]
            states = {s["SnapshotId"]: s["State"] for s in snapshots}
            failed = [i for i, s in states.items() if s == "error"]
            if failed:
                raise OperationFailed(f"snapshots failed: {', '.join(failed)}")
            pending = [i for i in snapshot_ids if states.get(i) != "completed"]
            if not pending:
                return
            if time.monotonic() + delay > deadline:
                raise OperationFailed(
                    f"snapshots not completed after {timeout:.0f} s "
                    f"(--aws-await-snapshots-timeout): {', '.join(pending)}"
                )
            checkpoint()
            time.sleep(delay)
            delay = min(MAX_POLL, delay * 2)
