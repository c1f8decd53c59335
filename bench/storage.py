"""Storage throughput per backend, next to each SDK's own transfer of the same bytes.

    .venv/bin/python bench/storage.py [--size-mb 1024] [--jobs 4] [--cap-mb 8]

For each backend (local directory, S3 on moto, Azure on Azurite, GCS on fake-gcs-server,
all on 127.0.0.1) it uploads and downloads the same object with pgvault's store and with
the SDK's own managed transfer, and prints MB/s and the ratio pgvault/SDK. Then it uploads
under --max-bandwidth and prints the achieved rate against the cap. The emulators share
this machine's cores with the client, so compare ratios, not absolute figures.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.storage import StoreConfig, open_store
from core.urls import parse_location
from tests.support.destinations import make_destination
from tests.support.emulators import start_azurite, start_fake_gcs, start_moto

MiB = 1024 * 1024


class Null(io.RawIOBase):
    """A sink that counts bytes, for downloads."""

    def __init__(self) -> None:
        self.count = 0

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True  # the Azure SDK insists; writes arrive in order anyway

    def seek(self, offset: int, whence: int = 0) -> int:
        return offset

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        self.count += len(data)
        return len(data)


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def sdk_upload(
    provider: str, dest: object, key: str, data: memoryview, chunk: int, jobs: int
) -> Callable[[], object]:
    full = parse_location(dest.url).child(key)  # type: ignore[attr-defined]
    bucket = dest.bucket  # type: ignore[attr-defined]
    if provider == "s3":
        import boto3
        from boto3.s3.transfer import TransferConfig

        client = boto3.client("s3", endpoint_url=dest.config.endpoint_url)  # type: ignore[attr-defined]
        config = TransferConfig(
            multipart_chunksize=chunk, multipart_threshold=chunk, max_concurrency=jobs
        )
        return lambda: client.upload_fileobj(io.BytesIO(data), bucket, full, Config=config)
    if provider == "azure":
        from azure.storage.blob import BlobServiceClient

        svc = BlobServiceClient.from_connection_string(
            os.environ["AZURE_STORAGE_CONNECTION_STRING"],
            max_block_size=chunk,
            max_single_put_size=chunk,
        )
        blob = svc.get_blob_client(bucket, full)
        return lambda: blob.upload_blob(bytes(data), overwrite=True, max_concurrency=jobs)
    if provider == "gcs":
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        client = storage.Client(project="bench", credentials=AnonymousCredentials())
        blob = client.bucket(bucket).blob(full, chunk_size=chunk)
        return lambda: blob.upload_from_file(io.BytesIO(data), size=len(data))
    root = dest.bucket  # type: ignore[attr-defined]

    def copy() -> None:
        path = os.path.join(root, "sdk-" + key.replace("/", "-"))
        with open(path, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())

    return copy


def sdk_download(provider: str, dest: object, key: str, jobs: int) -> Callable[[], object]:
    full = parse_location(dest.url).child(key)  # type: ignore[attr-defined]
    bucket = dest.bucket  # type: ignore[attr-defined]
    if provider == "s3":
        import boto3
        from boto3.s3.transfer import TransferConfig

        client = boto3.client("s3", endpoint_url=dest.config.endpoint_url)  # type: ignore[attr-defined]
        return lambda: client.download_fileobj(
            bucket, full, Null(), Config=TransferConfig(max_concurrency=jobs)
        )
    if provider == "azure":
        from azure.storage.blob import BlobServiceClient

        svc = BlobServiceClient.from_connection_string(
            os.environ["AZURE_STORAGE_CONNECTION_STRING"]
        )
        blob = svc.get_blob_client(bucket, full)
        return lambda: blob.download_blob(max_concurrency=jobs).readinto(Null())
    if provider == "gcs":
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        client = storage.Client(project="bench", credentials=AnonymousCredentials())
        blob = client.bucket(bucket).blob(full)
        return lambda: blob.download_to_file(Null())
    path = os.path.join(dest.bucket, "sdk-" + key.replace("/", "-"))  # type: ignore[attr-defined]

    def read() -> None:
        with open(path, "rb") as fh:
            while fh.read(8 * MiB):
                pass

    return read


def pgvault_upload(store: object, key: str, data: memoryview) -> Callable[[], object]:
    def run() -> None:
        with store.open_writer(key) as writer:  # type: ignore[attr-defined]
            for offset in range(0, len(data), 8 * MiB):
                writer.write(data[offset : offset + 8 * MiB])

    return run


def pgvault_download(store: object, key: str, jobs: int) -> Callable[[], object]:
    def run() -> None:
        with store.open_prefetching_reader(key, jobs=jobs) as reader:  # type: ignore[attr-defined]
            while reader.read_chunk():
                pass

    return run


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--jobs", type=int, default=4)
    parser.add_argument("--chunk-mb", type=int, default=16)
    parser.add_argument("--cap-mb", type=float, default=8.0, help="bandwidth cap to check, MiB/s")
    parser.add_argument("--cap-seconds", type=float, default=20.0)
    parser.add_argument("--providers", default="file,s3,azure,gcs")
    args = parser.parse_args()

    size = args.size_mb * MiB
    chunk = args.chunk_mb * MiB
    print(f"generating {args.size_mb} MiB of incompressible data ...", flush=True)
    data = memoryview(os.urandom(size))
    emulators = {"s3": start_moto(), "azure": start_azurite(), "gcs": start_fake_gcs()}
    for emulator in emulators.values():
        os.environ.update(emulator.env)
    rows = []
    try:
        for provider in args.providers.split(","):
            dest = make_destination(provider, emulators)
            store = open_store(
                parse_location(dest.url),
                StoreConfig(
                    endpoint_url=dest.config.endpoint_url, jobs=args.jobs, min_chunk_size=chunk
                ),
            )
            up = timed(pgvault_upload(store, "bench/pgvault.bin", data))
            up_sdk = timed(sdk_upload(provider, dest, "bench/sdk.bin", data, chunk, args.jobs))
            down = timed(pgvault_download(store, "bench/pgvault.bin", args.jobs))
            down_sdk = timed(sdk_download(provider, dest, "bench/sdk.bin", args.jobs))
            rows.append(
                (
                    provider,
                    size / up / 1e6,
                    size / up_sdk / 1e6,
                    size / down / 1e6,
                    size / down_sdk / 1e6,
                )
            )
            print(f"  {provider}: done", flush=True)
            store.close()
            dest.drop()

        print(f"\n{args.size_mb} MiB object, -J {args.jobs}, {args.chunk_mb} MiB chunks (MB/s)")
        print(
            f"{'backend':8} {'up':>8} {'SDK up':>8} {'ratio':>6} {'down':>8} {'SDK down':>9} "
            f"{'ratio':>6}"
        )
        for provider, u, us, d, ds in rows:
            print(f"{provider:8} {u:8.1f} {us:8.1f} {u / us:6.2f} {d:8.1f} {ds:9.1f} {d / ds:6.2f}")

        cap = int(args.cap_mb * MiB)
        print(f"\nbandwidth cap {args.cap_mb} MiB/s, about {args.cap_seconds:.0f} s of upload:")
        for provider in ("file", "s3"):
            dest = make_destination(provider, emulators)
            store = open_store(
                parse_location(dest.url),
                StoreConfig(
                    endpoint_url=dest.config.endpoint_url,
                    jobs=args.jobs,
                    max_bandwidth=cap,
                    min_chunk_size=5 * MiB,
                ),
            )
            amount = int(cap * args.cap_seconds)
            elapsed = timed(pgvault_upload(store, "bench/capped.bin", data[:amount]))
            achieved = amount / elapsed
            print(
                f"  {provider:5} achieved {achieved / MiB:6.2f} MiB/s = "
                f"{achieved / cap:5.3f} of the cap"
            )
            store.close()
            dest.drop()
    finally:
        for emulator in emulators.values():
            emulator.stop()
        shutil.rmtree(tempfile.gettempdir() + "/pgvault-bench", ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
