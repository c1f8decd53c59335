"""EC2 on moto's server (the same moto that serves S3), and a tap that copies a "disk" at the
moment its snapshot is taken.

moto's EC2 keeps instances, volumes and snapshots as API records but holds no disk data. The
`SnapshotTap` is an HTTP proxy on 127.0.0.1 in front of moto: when a CreateSnapshot request
passes through it, it first copies the directory the test treats as that volume (the
PostgreSQL data directory's parent), then forwards the request. The copy is therefore made
exactly when pgvault asks the cloud for the snapshot, between pg_backup_start and
pg_backup_stop. It is a file-by-file copy of a live cluster, not an atomic block snapshot:
weaker than EBS's crash-consistent snapshot, and what PostgreSQL's backup mode is designed
to repair (full-page writes, WAL replay from backup_label).
"""

from __future__ import annotations

import http.client
import os
import shutil
import stat
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import boto3

from tests.support.emulators import Emulator


def ec2_client(moto: Emulator) -> Any:
    return boto3.client(
        "ec2",
        endpoint_url=moto.endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def make_instance(ec2: Any, name: str) -> dict[str, Any]:
    image = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    tags = [{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": name}]}]
    reply = ec2.run_instances(
        ImageId=image, MinCount=1, MaxCount=1, InstanceType="t3.micro", TagSpecifications=tags
    )
    return dict(reply["Instances"][0])


def make_volume(
    ec2: Any, instance: dict[str, Any], device: str, name: str, snapshot_id: str | None = None
) -> str:
    """A volume (from a snapshot, when given) attached to the instance at `device`."""
    extra = {"SnapshotId": snapshot_id} if snapshot_id else {}
    volume = ec2.create_volume(
        AvailabilityZone=instance["Placement"]["AvailabilityZone"],
        Size=10,
        TagSpecifications=[{"ResourceType": "volume", "Tags": [{"Key": "Name", "Value": name}]}],
        **extra,
    )
    ec2.attach_volume(VolumeId=volume["VolumeId"], InstanceId=instance["InstanceId"], Device=device)
    return str(volume["VolumeId"])


def copy_volume(source: str, target: str) -> None:
    """Copy a live directory tree keeping owners and modes; files vanishing are skipped,
    sockets too (PostgreSQL's socket directory). A retried CreateSnapshot copies nothing."""
    if os.path.exists(target):
        return

    def copy(src: str, dst: str) -> None:
        try:
            if stat.S_ISSOCK(os.lstat(src).st_mode):
                return
            shutil.copy2(src, dst)
            st = os.lstat(src)
            os.chown(dst, st.st_uid, st.st_gid, follow_symlinks=False)
        except (FileNotFoundError, shutil.SpecialFileError):
            pass

    shutil.copytree(source, target, symlinks=True, copy_function=copy)
    for root, dirs, _ in os.walk(target):
        for name in [".", *dirs]:
            path = os.path.normpath(os.path.join(root, name))
            st = os.lstat(os.path.join(source, os.path.relpath(path, target)))
            os.chown(path, st.st_uid, st.st_gid, follow_symlinks=False)


@dataclass
class SnapshotTap:
    """A proxy to moto that runs `on_snapshot(body)` before forwarding each CreateSnapshot."""

    moto: Emulator
    on_snapshot: Callable[[bytes], None]
    snapshots: list[bytes] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def endpoint(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> SnapshotTap:
        tap = self
        target = urlsplit(self.moto.endpoint)

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if b"Action=CreateSnapshot" in body:
                    tap.on_snapshot(body)
                    tap.snapshots.append(body)
                conn = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                conn.request(self.command, self.path, body=body, headers=headers)
                answer = conn.getresponse()
                data = answer.read()
                self.send_response(answer.status)
                for key, value in answer.getheaders():
                    if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                conn.close()

            do_GET = do_POST = _forward

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
