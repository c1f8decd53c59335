"""age v1 encryption throughput: pgvault's streams next to raw ChaCha20-Poly1305 and `age`.

    .venv/bin/python bench/crypto.py [--size-mb 256] [--runs 3] [--write-kb 1024]

On the same random data it measures, best of --runs (all runs shown):
- raw: ChaCha20-Poly1305 over 64 KiB chunks with age's nonces, in memory (the ceiling);
- pgvault in memory: EncryptingWriter fed --write-kb pieces into a counting sink, and
  DecryptingReader read in --write-kb pieces from memory;
- file to file: pgvault and the `age` CLI (`-r` / `-d -i`) each reading and writing files in
  the same temporary directory.
It prints MiB/s and the ratios pgvault/raw and pgvault/age.
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from core.crypto import DecryptingReader, EncryptingWriter, format_identity_file, generate_identity

MiB = 1024 * 1024
CHUNK = 64 * 1024


class Count:
    """A sink that only counts."""

    def __init__(self) -> None:
        self.count = 0

    def write(self, data: bytes) -> int:
        self.count += len(data)
        return len(data)


def best(runs: int, action: Callable[[], None]) -> tuple[float, list[float]]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return min(times), times


def raw(data: bytes) -> tuple[Callable[[], None], Callable[[], None]]:
    aead = ChaCha20Poly1305(os.urandom(32))
    chunks = range(0, len(data), CHUNK)
    nonces = [
        i.to_bytes(11, "big") + (b"\x01" if s + CHUNK >= len(data) else b"\x00")
        for i, s in enumerate(chunks)
    ]
    view = memoryview(data)
    # Sealed once for the decrypt run; the timed encrypt drops its output, as the writer's
    # counting sink does (keeping 256 MiB of new buffers would time page faults too).
    sealed = [
        aead.encrypt(n, view[s : s + CHUNK], None) for n, s in zip(nonces, chunks, strict=True)
    ]

    def encrypt() -> None:
        for nonce, start in zip(nonces, chunks, strict=True):
            aead.encrypt(nonce, view[start : start + CHUNK], None)

    def decrypt() -> None:
        for nonce, chunk in zip(nonces, sealed, strict=True):
            aead.decrypt(nonce, chunk, None)

    return encrypt, decrypt


def pgvault(data: bytes, piece: int) -> tuple[Callable[[], None], Callable[[], None]]:
    identity = generate_identity()
    out = io.BytesIO()

    def encrypt() -> None:
        writer = EncryptingWriter(Count(), [identity.recipient()])
        view = memoryview(data)
        for start in range(0, len(data), piece):
            writer.write(view[start : start + piece])
        writer.close()

    with EncryptingWriter(out, [identity.recipient()]) as writer:
        writer.write(data)
    sealed = out.getvalue()

    def decrypt() -> None:
        reader = DecryptingReader(io.BytesIO(sealed), [identity], "bench")
        while reader.read(piece):
            pass

    return encrypt, decrypt


def files(work: Path, piece: int) -> dict[str, Callable[[], None]]:
    identity = generate_identity()
    key = work / "identity.txt"
    key.write_text(format_identity_file([identity]))
    plain, ours, theirs = work / "plain", work / "pgvault.age", work / "age.age"

    def encrypt() -> None:
        with plain.open("rb") as src, ours.open("wb") as dst:
            writer = EncryptingWriter(dst, [identity.recipient()])
            while block := src.read(piece):
                writer.write(block)
            writer.close()

    def decrypt() -> None:
        with ours.open("rb") as src, (work / "out").open("wb") as dst:
            reader = DecryptingReader(src, [identity], "bench")
            while block := reader.read(piece):
                dst.write(block)

    def age(*args: str) -> Callable[[], None]:
        return lambda: subprocess.run(["age", *args], check=True)

    recipient = str(identity.recipient())
    return {
        "pgvault encrypt": encrypt,
        "pgvault decrypt": decrypt,
        "age encrypt": age("-r", recipient, "-o", str(theirs), str(plain)),
        "age decrypt": age("-d", "-i", str(key), "-o", str(work / "out"), str(theirs)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=256)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--write-kb", type=int, default=1024)
    args = parser.parse_args()
    size, piece = args.size_mb * MiB, args.write_kb * 1024
    data = os.urandom(size)
    rates: dict[str, tuple[float, list[float]]] = {}

    def measure(name: str, action: Callable[[], None]) -> None:
        seconds, times = best(args.runs, action)
        rates[name] = (size / MiB / seconds, [size / MiB / t for t in times])

    raw_enc, raw_dec = raw(data)
    measure("raw encrypt", raw_enc)
    measure("raw decrypt", raw_dec)
    enc, dec = pgvault(data, piece)
    measure("pgvault encrypt (memory)", enc)
    measure("pgvault decrypt (memory)", dec)
    with tempfile.TemporaryDirectory(prefix="pgvault-bench-crypto-") as tmp:
        work = Path(tmp)
        (work / "plain").write_bytes(data)
        del data
        for name, action in files(work, piece).items():
            measure(f"{name} (files)", action)

    print(f"\n{args.size_mb} MiB random, {args.write_kb} KiB writes/reads, best of {args.runs}\n")
    print("| operation | MiB/s | runs |")
    print("|---|---:|---|")
    for name, (rate, runs) in rates.items():
        print(f"| {name} | {rate:.0f} | {'/'.join(f'{r:.0f}' for r in runs)} |")
    print("\n| ratio | value |")
    print("|---|---:|")
    for a, b in (
        ("pgvault encrypt (memory)", "raw encrypt"),
        ("pgvault decrypt (memory)", "raw decrypt"),
        ("pgvault encrypt (files)", "age encrypt (files)"),
        ("pgvault decrypt (files)", "age decrypt (files)"),
    ):
        print(f"| {a} / {b} | {rates[a][0] / rates[b][0]:.2f} |")


if __name__ == "__main__":
    main()
