"""Where a cloud disk is mounted on this host, and with which options.

By default as barman-cloud does (AwsVolumeMetadata.resolve_mounted_volume): the device name
the cloud API reports for the attachment is looked up in /sys/block (also renamed /dev/sdX
-> /dev/xvdX, and Nitro NVMe devices by the volume ID in their serial), then `findmnt -o
TARGET,OPTIONS -n DEVICE` gives the mount point and options. Where the cloud's device name
means nothing on this host (a container, a test), `--snapshot-mount DISK=PATH` says where
the disk is mounted; the options recorded are then those of the filesystem holding PATH
(`findmnt -T PATH`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass

from core.errors import InputError, OperationFailed

SYS_BLOCK = "/sys/block"
ROOT_DEVICES = ("/dev/sda1", "/dev/xvda")


@dataclass(frozen=True)
class Mount:
    point: str
    options: str


def parse_overrides(texts: list[str] | tuple[str, ...] | None) -> tuple[tuple[str, str], ...]:
    """`--snapshot-mount DISK=PATH` values: an absolute, existing directory per disk."""
    result: dict[str, str] = {}
    for text in texts or ():
        disk, sep, path = text.partition("=")
        if not sep or not disk or not path:
            raise InputError(f"--snapshot-mount {text!r}: the syntax is DISK=PATH")
        if not os.path.isabs(path):
            raise InputError(f"--snapshot-mount {text!r}: {path} must be an absolute path")
        if not os.path.isdir(path):
            raise InputError(f"--snapshot-mount {text!r}: {path} is not a directory")
        if disk in result:
            raise InputError(f"--snapshot-mount names disk {disk} twice")
        result[disk] = os.path.normpath(path)
    return tuple(result.items())


def _findmnt(*args: str) -> str:
    findmnt = shutil.which("findmnt")
    if findmnt is None:
        raise OperationFailed("findmnt (util-linux) is not installed: it finds disk mounts")
    try:
        done = subprocess.run(  # noqa: S603 - findmnt with arguments we built, no shell
            [findmnt, "-n", *args], capture_output=True, text=True, timeout=30, check=False
        )
    except OSError as exc:
        raise OperationFailed(f"cannot run findmnt to find disk mounts: {exc}") from None
    return done.stdout.strip() if done.returncode == 0 else ""


def mount_of_path(path: str) -> Mount:
    """An overridden disk: mounted at PATH, with the options of the filesystem holding it."""
    options = _findmnt("-o", "OPTIONS", "-T", path).splitlines()
    if not options:
        raise OperationFailed(f"findmnt finds no filesystem holding {path}")
    return Mount(path, options[0].strip())


def _device_candidates(device: str, volume_id: str | None, paravirtual: bool) -> list[str]:
    """The names the attachment's device may have on this host, as barman tries them."""
    name = device
    new_prefix = "/dev/hd" if paravirtual else "/dev/xvd"
    try:
        blocks = os.listdir(SYS_BLOCK)
    except OSError:
        blocks = []
    for block in blocks:
        path = f"/dev/{block}"
        if name == path:
            break
        if name.startswith("/dev/sd") and name.replace("/dev/sd", new_prefix) == path:
            name = path
            break
        serial = os.path.join(SYS_BLOCK, block, "device", "serial")
        if "nvme" in block and volume_id and os.path.isfile(serial):
            with open(serial) as fh:
                if fh.readline().strip().replace("vol", "vol-") == volume_id:
                    name = path
                    break
    return [name, name.removeprefix("/dev/")]


def mount_of_device(device: str, volume_id: str | None, paravirtual: bool = False) -> Mount | None:
    """The mount of an attached disk found by its device name; None when not mounted."""
    if device in ROOT_DEVICES:
        raise InputError(f"{device} is a root volume: the disks of a snapshot backup are not")
    for name in _device_candidates(device, volume_id, paravirtual):
        mount = mount_of_block(name)
        if mount is not None:
            return mount
    return None


def mount_of_block(device: str) -> Mount | None:
    """Where a block device (a path, or a name findmnt resolves) is mounted; None if not."""
    out = _findmnt("-o", "TARGET,OPTIONS", device)
    if not out:
        return None
    fields = out.split()
    if len(fields) != 2:  # noqa: PLR2004 - TARGET and OPTIONS, as barman insists
        raise OperationFailed(f"unexpected findmnt output for {device}: {out!r}")
    return Mount(fields[0], fields[1])


def inside(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip("/") + "/")
