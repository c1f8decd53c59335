"""OpenSSH's sshd on 127.0.0.1 (a free port, its own config and keys) for Barman's rsync
backup method, which copies PGDATA over ssh: the postgres user logs in to itself with a key."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass

from tests.support.emulators import EmulatorMissing, free_port
from tests.support.postgres import PG_USER, as_postgres, chown_tree, world_dir

SSHD = "/usr/sbin/sshd"

CONFIG = """\
ListenAddress 127.0.0.1
Port {port}
HostKey {work}/host_key
PidFile {work}/sshd.pid
AuthorizedKeysFile {work}/authorized_keys
AllowUsers {user}
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
# with PAM: postgres has no password ("!"), which sshd on its own takes for a locked account
UsePAM yes
StrictModes no
"""


@dataclass
class Sshd:
    """A running sshd and the ssh command that logs postgres in to it."""

    work: str
    port: int
    proc: subprocess.Popen[bytes]

    @property
    def ssh_command(self) -> str:
        return (
            f"ssh -i {self.work}/client_key -p {self.port} -o BatchMode=yes "
            "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR "
            f"{PG_USER}@127.0.0.1"
        )

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.work, ignore_errors=True)


def start_sshd() -> Sshd:
    """sshd as root on 127.0.0.1 (it must be root to log a user in); postgres's key in."""
    if not os.path.exists(SSHD) or not shutil.which("rsync"):
        raise EmulatorMissing("openssh-server or rsync is not installed (scripts/bootstrap.sh)")
    if os.geteuid() != 0:
        raise EmulatorMissing("sshd for the rsync method needs root")
    work = world_dir("pgvault-sshd-")
    keygen = ["ssh-keygen", "-q", "-t", "ed25519", "-N", ""]
    subprocess.run([*keygen, "-f", f"{work}/host_key"], check=True)
    subprocess.run([*keygen, "-f", f"{work}/client_key"], check=True)
    shutil.copy(f"{work}/client_key.pub", f"{work}/authorized_keys")
    chown_tree(work)  # the client key must belong to postgres, who runs ssh
    os.chown(f"{work}/host_key", 0, 0)
    port = free_port()
    with open(f"{work}/sshd_config", "w") as fh:
        fh.write(CONFIG.format(port=port, work=work, user=PG_USER))
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # its privilege separation directory
    log = open(f"{work}/sshd.log", "wb")  # noqa: SIM115 - sshd writes it until stopped
    proc = subprocess.Popen(
        [SSHD, "-D", "-e", "-f", f"{work}/sshd_config"],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    server = Sshd(work, port, proc)
    _wait(server)
    probe = as_postgres([*server.ssh_command.split(), "true"], check=False)
    if probe.returncode != 0:
        server.stop()
        raise RuntimeError(f"ssh to the test sshd failed: {probe.stderr}")
    return server


def _wait(server: Sshd, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            with open(f"{server.work}/sshd.log") as fh:
                raise RuntimeError(f"sshd exited early: {fh.read()[-2000:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", server.port)) == 0:
                return
        time.sleep(0.1)
    server.stop()
    raise RuntimeError("sshd did not start listening")
