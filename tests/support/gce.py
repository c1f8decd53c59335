"""A local Compute Engine API: the REST subset google-cloud-compute calls for snapshot
backups, on 127.0.0.1 (plain http: pgvault then sends no token).

No emulator of the Compute Engine API exists, so this one is written from the REST
reference (compute/v1): instances.get, disks.get, snapshots.insert/get/delete and
globalOperations.get/wait, with the documented JSON shapes (camelCase fields, Operation
resources with status PENDING/RUNNING/DONE, errors as {"error": {"code", "message",
"errors"}}). It proves pgvault drives the official SDK correctly against that subset; it
does not prove the real service (quotas, IAM, real device names, snapshot contents).

Snapshots hold no data here either: `on_snapshot(name, disk)` runs when an insert arrives
(between pg_backup_start and pg_backup_stop), and the test copies the directory it treats
as the disk. An insert's operation is RUNNING, and its snapshot CREATING then UPLOADING,
for `polls_to_ready` reads, so the waiting is exercised.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

BASE = "https://www.googleapis.com/compute/v1"
PREFIX = "/compute/v1/projects/"


@dataclass
class GceServer:
    """Projects, zones, instances, disks and snapshots as plain dicts (the API's JSON)."""

    on_snapshot: Callable[[str, str], None] = lambda name, disk: None
    polls_to_ready: int = 2
    projects: set[str] = field(default_factory=set)
    instances: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    disks: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    snapshots: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    operations: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, path)
    server: ThreadingHTTPServer | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def endpoint(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    # The test's set-up: what an operator would have created in the console.
    def add_disk(
        self, project: str, zone: str, name: str, source_snapshot: str | None = None
    ) -> None:
        self.projects.add(project)
        disk: dict[str, Any] = {
            "kind": "compute#disk",
            "name": name,
            "zone": f"{BASE}/projects/{project}/zones/{zone}",
            "status": "READY",
            "sizeGb": "10",
            "selfLink": f"{BASE}/projects/{project}/zones/{zone}/disks/{name}",
        }
        if source_snapshot:
            disk["sourceSnapshot"] = f"{BASE}/projects/{project}/global/snapshots/{source_snapshot}"
        self.disks[(project, zone, name)] = disk

    def add_instance(
        self, project: str, zone: str, name: str, disks: list[tuple[str, str]]
    ) -> None:
        """An instance with a boot disk and the given (disk name, device name) attached."""
        self.add_disk(project, zone, f"{name}-boot")
        attached = [
            {
                "kind": "compute#attachedDisk",
                "boot": True,
                "deviceName": "persistent-disk-0",
                "index": 0,
                "source": f"{BASE}/projects/{project}/zones/{zone}/disks/{name}-boot",
            }
        ]
        for index, (disk, device) in enumerate(disks, start=1):
            if (project, zone, disk) not in self.disks:
                self.add_disk(project, zone, disk)
            attached.append(
                {
                    "kind": "compute#attachedDisk",
                    "boot": False,
                    "deviceName": device,
                    "index": index,
                    "source": f"{BASE}/projects/{project}/zones/{zone}/disks/{disk}",
                }
            )
        self.instances[(project, zone, name)] = {
            "kind": "compute#instance",
            "name": name,
            "status": "RUNNING",
            "zone": f"{BASE}/projects/{project}/zones/{zone}",
            "disks": attached,
        }

    # The API: each handler answers its JSON or raises ApiError.
    def handle(self, method: str, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        with self.lock:
            self.requests.append((method, path))
            try:
                return 200, self._route(method, path, body)
            except ApiError as exc:
                return exc.code, exc.body()

    def _route(self, method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        if not path.startswith(PREFIX):
            raise ApiError(404, f"no such API path {path}")
        project, *rest = path[len(PREFIX) :].split("/")
        if project not in self.projects:
            raise ApiError(404, f"The resource 'projects/{project}' was not found")
        if len(rest) == 4 and rest[0] == "zones" and method == "GET":
            return self._zonal(project, rest[1], rest[2], rest[3])
        if rest == ["global", "snapshots"] and method == "POST":
            return self._insert(project, body)
        if rest[:2] == ["global", "snapshots"] and len(rest) == 3:
            return self._snapshot(method, project, rest[2])
        if rest[:2] == ["global", "operations"] and len(rest) >= 3:
            operation = self.operations.get((project, rest[2]))
            if operation is None:
                raise ApiError(404, f"The resource 'operations/{rest[2]}' was not found")
            self._advance(operation)
            return operation
        raise ApiError(404, f"no such API path {path}")

    def _zonal(self, project: str, zone: str, kind: str, name: str) -> dict[str, Any]:
        table = {"instances": self.instances, "disks": self.disks}.get(kind, {})
        found = table.get((project, zone, name))
        if found is None:
            link = f"projects/{project}/zones/{zone}/{kind}/{name}"
            raise ApiError(404, f"The resource '{link}' was not found")
        return found

    def _insert(self, project: str, body: dict[str, Any]) -> dict[str, Any]:
        name = body.get("name", "")
        source = body.get("sourceDisk") or body.get("source_disk") or ""
        if not re.fullmatch(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?", name):
            raise ApiError(400, f"Invalid value for field 'resource.name': '{name}'")
        match = re.fullmatch(r"(?:.*/)?projects/([^/]+)/zones/([^/]+)/disks/([^/]+)", source)
        if match is None or tuple(match.groups()) not in self.disks:
            raise ApiError(404, f"The resource '{source}' was not found")
        link = f"projects/{project}/global/snapshots/{name}"
        if (project, name) in self.snapshots:
            raise ApiError(409, f"The resource '{link}' already exists")
        self.on_snapshot(name, match.group(3))
        self.snapshots[(project, name)] = {
            "kind": "compute#snapshot",
            "name": name,
            "status": "CREATING",
            "sourceDisk": f"{BASE}/{source.split('compute/v1/')[-1]}",
            "selfLink": f"{BASE}/{link}",
            "_polls": 0,
        }
        return self._operation(project, "insert", name)

    def _snapshot(self, method: str, project: str, name: str) -> dict[str, Any]:
        snapshot = self.snapshots.get((project, name))
        if snapshot is None:
            link = f"projects/{project}/global/snapshots/{name}"
            raise ApiError(404, f"The resource '{link}' was not found")
        if method == "DELETE":
            del self.snapshots[(project, name)]
            return self._operation(project, "delete", name, done=True)
        snapshot["_polls"] += 1
        if snapshot["_polls"] > self.polls_to_ready:
            snapshot["status"] = "READY"
        elif snapshot["_polls"] > 1:
            snapshot["status"] = "UPLOADING"
        return snapshot

    def _operation(self, project: str, kind: str, name: str, done: bool = False) -> dict[str, Any]:
        op_name = f"operation-{uuid.uuid4().hex[:16]}"
        operation = {
            "kind": "compute#operation",
            "id": str(uuid.uuid4().int % 10**18),
            "name": op_name,
            "operationType": kind,
            "status": "DONE" if done else "RUNNING",
            "progress": 100 if done else 0,
            "targetLink": f"{BASE}/projects/{project}/global/snapshots/{name}",
            "selfLink": f"{BASE}/projects/{project}/global/operations/{op_name}",
            "_polls": 0,
        }
        self.operations[(project, op_name)] = operation
        return operation

    def _advance(self, operation: dict[str, Any]) -> None:
        operation["_polls"] += 1
        if operation["_polls"] >= self.polls_to_ready:
            operation["status"] = "DONE"
            operation["progress"] = 100

    def start(self) -> GceServer:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else {}
                except ValueError:
                    body = {}
                status, answer = api.handle(self.command, urlsplit(self.path).path, body)
                answer = {k: v for k, v in answer.items() if not k.startswith("_")}
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=UTF-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = _serve

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


class ApiError(Exception):
    """An error answer, in the API's documented shape."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def body(self) -> dict[str, Any]:
        reason = {400: "invalid", 404: "notFound", 409: "alreadyExists"}.get(self.code, "error")
        error = {"message": self.message, "domain": "global", "reason": reason}
        return {"error": {"code": self.code, "message": self.message, "errors": [error]}}
