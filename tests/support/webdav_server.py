"""nginx with its dav module and dav-ext (PROPFIND) on 127.0.0.1, configured in a temp dir.

One nginx serves plain http on `port` and https on `tls_port` with a certificate from a CA
made here (`ca_file`). Trees with their own behaviour: /auth/ needs basic auth, /small/
takes request bodies up to 64 KiB, /quota/ answers every PUT 507 Insufficient Storage as
a server over its quota does, /stall/ drops a request body silent for 3 s and a
kept-alive connection idle for 2 s. Debian's
packages: nginx and libnginx-mod-http-dav-ext (scripts/bootstrap.sh installs them).
"""

from __future__ import annotations

import getpass
import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tests.support.emulators import Emulator, EmulatorMissing, free_port

DAV_EXT = "/usr/lib/nginx/modules/ngx_http_dav_ext_module.so"
AUTH_USER = "pgvault"
AUTH_PASSWORD = "dav-Secret-9f3c2a"

CONFIG = """
load_module {dav_ext};
daemon off;
{user}
worker_processes 2;
pid {work}/nginx.pid;
error_log {work}/error.log;
events {{ worker_connections 256; }}
http {{
  access_log {work}/access.log;
  client_body_temp_path {work}/body;
  proxy_temp_path {work}/proxy;
  fastcgi_temp_path {work}/fastcgi;
  uwsgi_temp_path {work}/uwsgi;
  scgi_temp_path {work}/scgi;
  client_max_body_size 0;
  server {{
    listen 127.0.0.1:{port};
    listen 127.0.0.1:{tls_port} ssl;
    ssl_certificate {work}/server.crt;
    ssl_certificate_key {work}/server.key;
    root {work}/root;
    location / {{
      dav_methods PUT DELETE MKCOL COPY MOVE;
      dav_ext_methods PROPFIND OPTIONS;
      dav_access user:rw group:rw all:r;
    }}
    location /small/ {{
      client_max_body_size 64k;
      dav_methods PUT DELETE MKCOL COPY MOVE;
      dav_ext_methods PROPFIND OPTIONS;
    }}
    location /stall/ {{
      client_body_timeout 3s;
      keepalive_timeout 2s;
      dav_methods PUT DELETE MKCOL COPY MOVE;
      dav_ext_methods PROPFIND OPTIONS;
    }}
    location /quota/ {{
      if ($request_method = PUT) {{ return 507; }}
      dav_methods PUT DELETE MKCOL COPY MOVE;
      dav_ext_methods PROPFIND OPTIONS;
    }}
    location /auth/ {{
      auth_basic "pgvault";
      auth_basic_user_file {work}/htpasswd;
      dav_methods PUT DELETE MKCOL COPY MOVE;
      dav_ext_methods PROPFIND OPTIONS;
    }}
  }}
}}
"""


@dataclass
class DavServer:
    """The running nginx: endpoints, its CA and the directory it serves."""

    emulator: Emulator
    tls_port: int

    @property
    def port(self) -> int:
        return self.emulator.port

    @property
    def root(self) -> Path:
        return self.emulator.workdir / "root"

    @property
    def ca_file(self) -> str:
        return str(self.emulator.workdir / "ca.crt")

    def stop(self) -> None:
        self.emulator.stop()


def _openssl(work: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=work, check=True, capture_output=True)


def _certificates(work: Path) -> None:
    """A CA of its own and a server certificate for 127.0.0.1 signed by it."""
    _openssl(
        work,
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=pgvault test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
    )
    (work / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    _openssl(
        work,
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    )
    _openssl(
        work,
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
        "-out",
        "server.crt",
    )
    (work / "ca.crt").chmod(0o644)
    hashed = subprocess.run(
        ["openssl", "passwd", "-apr1", AUTH_PASSWORD], check=True, capture_output=True, text=True
    ).stdout.strip()
    (work / "htpasswd").write_text(f"{AUTH_USER}:{hashed}\n")


def start_nginx_dav() -> DavServer:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(nginx) or not os.path.exists(DAV_EXT):
        raise EmulatorMissing("nginx or libnginx-mod-http-dav-ext is not installed")
    work = Path(tempfile.mkdtemp(prefix="pgvault-nginx-"))
    work.chmod(0o755)  # the CA certificate is read by the postgres user's archive_command
    (work / "root" / "auth").mkdir(parents=True)
    _certificates(work)
    port, tls_port = free_port(), free_port()
    user = f"user {getpass.getuser()};" if os.getuid() == 0 else ""
    (work / "nginx.conf").write_text(
        CONFIG.format(dav_ext=DAV_EXT, user=user, work=work, port=port, tls_port=tls_port)
    )
    log = work / "nginx.log"
    proc = subprocess.Popen(
        [nginx, "-c", str(work / "nginx.conf"), "-p", str(work)],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    emulator = Emulator("nginx", port, proc, work)
    _wait(emulator, log)
    return DavServer(emulator, tls_port)


WSGIDAV_SERVER = """
import sys
from waitress import serve
from wsgidav.wsgidav_app import WsgiDAVApp
app = WsgiDAVApp({
    "provider_mapping": {"/": sys.argv[1]},
    "simple_dc": {"user_mapping": {"*": True}},
    "logging": {"enable": False},
    "verbose": 0,
})
serve(app, host="127.0.0.1", port=int(sys.argv[2]), threads=8, _quiet=True)
"""


def start_wsgidav() -> Emulator:
    """WsgiDAV (the test extra) served by waitress on 127.0.0.1, anonymous, over a temp dir;
    unlike nginx it honours If-None-Match: * on PUT and needs MKCOL before a PUT."""
    import sys

    work = Path(tempfile.mkdtemp(prefix="pgvault-wsgidav-"))
    (work / "root").mkdir()
    port = free_port()
    log = work / "wsgidav.log"
    proc = subprocess.Popen(
        [sys.executable, "-c", WSGIDAV_SERVER, str(work / "root"), str(port)],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    emulator = Emulator("wsgidav", port, proc, work)
    _wait(emulator, log)
    return emulator


def _wait(emulator: Emulator, log: Path) -> None:
    deadline = time.monotonic() + 30
    while True:
        if emulator.proc.poll() is not None:
            raise RuntimeError(f"{emulator.name} exited: {log.read_text()[-2000:]}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{emulator.port}/", timeout=1)
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            if time.monotonic() > deadline:
                emulator.stop()
                raise RuntimeError(f"{emulator.name} did not answer") from None
            time.sleep(0.05)
