"""A local Azure Resource Manager for Microsoft.Compute: the REST subset azure-mgmt-compute
calls for snapshot backups, over TLS on 127.0.0.1 with a CA of its own (azure-core sends a
bearer token over https only).

No emulator of the Azure Compute API exists, so this one is written from the REST reference:
virtualMachines get, disks get, snapshots PUT/GET/DELETE as long-running operations (
202 with an Azure-AsyncOperation header, the operation InProgress then Succeeded, then the
resource), ARM's error shape {"error": {"code", "message"}}. Every request must carry the
bearer token the test gave pgvault. It proves pgvault drives the official SDK correctly
against that subset, not the real service.

`on_snapshot(name, disk)` runs when a snapshot PUT arrives; the test copies the directory
it treats as the disk, as with tests.support.gce.
"""

from __future__ import annotations

import json
import re
import ssl
import tempfile
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.support.webdav_server import _certificates

TOKEN = "pgvault-test-arm-token"
PATH = re.compile(
    r"^/subscriptions/(?P<sub>[^/]+)/resourceGroups/(?P<rg>[^/]+)/providers/Microsoft\.Compute/"
    r"(?P<kind>virtualMachines|disks|snapshots)/(?P<name>[^/]+)$",
    re.IGNORECASE,
)
OPERATION = re.compile(
    r"^/subscriptions/[^/]+/providers/Microsoft\.Compute/locations/[^/]+/operations/(?P<id>[^/]+)$"
)


class ArmError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass
class ArmServer:
    on_snapshot: Callable[[str, str], None] = lambda name, disk: None
    polls_to_done: int = 2
    groups: set[tuple[str, str]] = field(default_factory=set)
    resources: dict[tuple[str, str, str, str], dict[str, Any]] = field(default_factory=dict)
    operations: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None
    workdir: Path | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def endpoint(self) -> str:
        assert self.server is not None
        return f"https://127.0.0.1:{self.server.server_address[1]}"

    @property
    def ca_file(self) -> str:
        assert self.workdir is not None
        return str(self.workdir / "ca.crt")

    @staticmethod
    def rid(sub: str, rg: str, kind: str, name: str) -> str:
        return f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/{kind}/{name}"

    # The test's set-up.
    def add_disk(
        self, sub: str, rg: str, name: str, location: str, source_snapshot: str | None = None
    ) -> None:
        self.groups.add((sub, rg))
        creation: dict[str, Any] = {"createOption": "Empty"}
        if source_snapshot:
            creation = {
                "createOption": "Copy",
                "sourceResourceId": self.rid(sub, rg, "snapshots", source_snapshot),
            }
        self.resources[(sub, rg.lower(), "disks", name)] = {
            "id": self.rid(sub, rg, "disks", name),
            "name": name,
            "type": "Microsoft.Compute/disks",
            "location": location,
            "properties": {
                "creationData": creation,
                "diskSizeGB": 10,
                "provisioningState": "Succeeded",
            },
        }

    def add_vm(self, sub: str, rg: str, name: str, location: str, disks: list[str]) -> None:
        """A VM with an OS disk and these data disks at LUN 0, 1, ..."""
        self.groups.add((sub, rg))
        data = []
        for lun, disk in enumerate(disks):
            if (sub, rg.lower(), "disks", disk) not in self.resources:
                self.add_disk(sub, rg, disk, location)
            data.append(
                {
                    "lun": lun,
                    "name": disk,
                    "createOption": "Attach",
                    "managedDisk": {"id": self.rid(sub, rg, "disks", disk)},
                }
            )
        self.resources[(sub, rg.lower(), "virtualMachines", name)] = {
            "id": self.rid(sub, rg, "virtualMachines", name),
            "name": name,
            "type": "Microsoft.Compute/virtualMachines",
            "location": location,
            "properties": {
                "provisioningState": "Succeeded",
                "storageProfile": {
                    "osDisk": {
                        "name": f"{name}-os",
                        "osType": "Linux",
                        "createOption": "FromImage",
                        "managedDisk": {"id": self.rid(sub, rg, "disks", f"{name}-os")},
                    },
                    "dataDisks": data,
                },
            },
        }

    def snapshots(self) -> dict[str, dict[str, Any]]:
        return {k[3]: v for k, v in self.resources.items() if k[2] == "snapshots"}

    # The API.
    def handle(
        self, method: str, path: str, auth: str, body: dict[str, Any]
    ) -> tuple[int, dict[str, str], dict[str, Any] | None]:
        with self.lock:
            self.requests.append((method, path))
            try:
                if auth != f"Bearer {TOKEN}":
                    raise ArmError(401, "AuthenticationFailed", "no valid bearer token")
                return self._route(method, path, body)
            except ArmError as exc:
                return exc.status, {}, {"error": {"code": exc.code, "message": exc.message}}

    def _route(
        self, method: str, path: str, body: dict[str, Any]
    ) -> tuple[int, dict[str, str], dict[str, Any] | None]:
        op = OPERATION.match(path)
        if op:
            operation = self.operations.get(op.group("id"))
            if operation is None:
                raise ArmError(404, "NotFound", f"no operation {op.group('id')}")
            operation["polls"] += 1
            done = operation["polls"] >= self.polls_to_done
            if done and operation["on_done"] is not None:
                operation["on_done"]()
                operation["on_done"] = None
            status = "Succeeded" if done else "InProgress"
            return 200, {"Retry-After": "1"}, {"name": op.group("id"), "status": status}
        match = PATH.match(path)
        if match is None:
            raise ArmError(404, "InvalidResourceType", f"no such path {path}")
        sub, rg, kind, name = match.group("sub", "rg", "kind", "name")
        if not any(s == sub for s, _ in self.groups):
            raise ArmError(
                404, "SubscriptionNotFound", f"The subscription '{sub}' could not be found."
            )
        if (sub, rg) not in self.groups:
            raise ArmError(
                404, "ResourceGroupNotFound", f"Resource group '{rg}' could not be found."
            )
        key = (sub, rg.lower(), kind, name)
        if kind == "snapshots" and method == "PUT":
            return self._create_snapshot(key, body)
        resource = self.resources.get(key)
        if method == "DELETE" and kind == "snapshots":
            if resource is None:
                return 204, {}, None
            return 202, self._operation(resource["location"], lambda: self.resources.pop(key)), None
        if resource is None:
            raise ArmError(
                404,
                "ResourceNotFound",
                f"The Resource 'Microsoft.Compute/{kind}/{name}' under resource group '{rg}' "
                "was not found.",
            )
        return 200, {}, resource

    def _create_snapshot(
        self, key: tuple[str, str, str, str], body: dict[str, Any]
    ) -> tuple[int, dict[str, str], dict[str, Any]]:
        sub, rg, _, name = key
        props = body.get("properties") or {}
        source = (props.get("creationData") or {}).get("sourceResourceId") or ""
        disk = source.rsplit("/", 1)[-1]
        if (sub, rg, "disks", disk) not in self.resources:
            raise ArmError(404, "NotFound", f"source disk {source!r} not found")
        if not body.get("location"):
            raise ArmError(400, "LocationRequired", "The location property is required")
        self.on_snapshot(name, disk)
        snapshot = {
            "id": self.rid(sub, rg, "snapshots", name),
            "name": name,
            "type": "Microsoft.Compute/snapshots",
            "location": body["location"],
            "tags": body.get("tags") or {},
            "properties": {**props, "provisioningState": "Creating"},
        }
        self.resources[key] = snapshot

        def done() -> None:
            snapshot["properties"]["provisioningState"] = "Succeeded"

        return 202, self._operation(body["location"], done), snapshot

    def _operation(self, location: str, on_done: Callable[[], Any]) -> dict[str, str]:
        op_id = str(uuid.uuid4())
        self.operations[op_id] = {"polls": 0, "on_done": on_done}
        sub = next(iter(self.groups))[0]
        url = (
            f"{self.endpoint}/subscriptions/{sub}/providers/Microsoft.Compute/locations/"
            f"{location}/operations/{op_id}?api-version=2024-03-02"
        )
        return {"Azure-AsyncOperation": url, "Retry-After": "1"}

    def start(self) -> ArmServer:
        api = self
        self.workdir = Path(tempfile.mkdtemp(prefix="pgvault-arm-"))
        _certificates(self.workdir)

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
                auth = self.headers.get("Authorization") or ""
                status, headers, answer = api.handle(
                    self.command, urlsplit(self.path).path, auth, body
                )
                data = json.dumps(answer).encode() if answer is not None else b""
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_PUT = do_DELETE = _serve

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.workdir / "server.crt", self.workdir / "server.key")
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
