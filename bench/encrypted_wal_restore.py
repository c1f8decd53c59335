"""What one `wal-restore` (restore_command, one process per WAL file) costs on an encrypted
server: with the passphrase alone (a scrypt per file) against the data keys the restore
hands it in its credentials file, with a plain server for reference.

    .venv/bin/python bench/encrypted_wal_restore.py [--rounds 3]

One local file:// destination, servers `plain` and `enc` (keys init with a passphrase,
2^18 scrypt as age writes), each given the same history file by core.wal.archive. Per round,
alternating the order: `pgvault --batch wal-restore` of it from `plain`, from `enc` with
PGVAULT_ENCRYPTION_PASSPHRASE, and from `enc` with `--credentials-file` holding what
`pgvault restore` writes (the passphrase and PGVAULT_DATA_IDENTITY). Best of the rounds.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.state import use_own_state_dir  # noqa: E402
from core.credentials_file import StoredCredentials, write_credentials  # noqa: E402
from core.crypto import Passphrase  # noqa: E402
from core.crypto.passphrase import PASSPHRASE_ENV  # noqa: E402
from core.encryption import (  # noqa: E402
    Credentials,
    credentials_environment,
    unlocked_keys,
    use_credentials,
)
from core.keyring import init_keys  # noqa: E402
from core.storage import StoreConfig, open_store  # noqa: E402
from core.urls import parse_location  # noqa: E402
from core.wal.archive import ArchiveSettings, WalArchiver  # noqa: E402

PGVAULT = str(REPO / ".venv" / "bin" / "pgvault")
HISTORY = "00000002.history"


def timed(args: list[str], env: dict[str, str]) -> float:
    start = time.monotonic()
    result = subprocess.run([PGVAULT, "--batch", *args], capture_output=True, text=True, env=env)
    seconds = time.monotonic() - start
    if result.returncode != 0:
        raise RuntimeError(f"wal-restore failed: {result.stderr}")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    use_own_state_dir()  # its jobs never land in the operator's state
    work = Path(tempfile.mkdtemp(prefix="pgvault-bench-walrestore-"))
    url = f"file://{work}/dest"
    passphrase = Passphrase(os.urandom(16).hex())  # a fresh secret per run, 2^18
    history = work / HISTORY
    history.write_text("1\t0/3000000\tno recovery target specified\n")
    with open_store(parse_location(url), StoreConfig()) as store:
        init_keys(store, "enc", passphrase, ())
        for server in ("plain", "enc"):
            WalArchiver(store, server, ArchiveSettings(compression="zstd")).archive(str(history))
        use_credentials(Credentials(passphrase))
        handed = credentials_environment(Credentials(passphrase), unlocked_keys(store, "enc"))
    credentials = work / "credentials.json"
    write_credentials(str(credentials), StoredCredentials(environment=handed))
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PGVAULT_")}
    ways = {
        "plain": (["plain"], clean),
        "passphrase": (["enc"], {**clean, PASSPHRASE_ENV: passphrase.value}),
        "handed keys": (["--credentials-file", str(credentials), "enc"], clean),
    }
    times: dict[str, list[float]] = {way: [] for way in ways}
    for round_ in range(args.rounds):
        order = list(ways) if round_ % 2 == 0 else list(reversed(ways))
        for way in order:
            flags, env = ways[way]
            out = work / f"out-{round_}-{way.replace(' ', '-')}"
            times[way].append(
                timed(["wal-restore", *flags[:-1], url, flags[-1], HISTORY, str(out)], env)
            )
        print(f"round {round_ + 1}: " + ", ".join(f"{w} {times[w][-1]:.2f} s" for w in order))
    plain = min(times["plain"])
    print(f"\nbest of {args.rounds}; load average {os.getloadavg()[0]:.1f}\n")
    print("| wal-restore of one file | s | vs plain |")
    print("|---|---:|---:|")
    for way, seconds in times.items():
        print(f"| {way} | {min(seconds):.2f} | {min(seconds) / plain:.2f} |")
    subprocess.run(["rm", "-rf", str(work)], check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
