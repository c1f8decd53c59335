"""Compression: gzip, bzip2, xz, snappy, lz4 and zstd, streaming, on several cores.

Every stream pgvault writes is one a single-threaded reader decodes unchanged (barman-cloud
reads base backups through tarfile's stream modes and lz4's frame decompressor):
- gzip is one member, compressed in parallel blocks joined by sync flushes (as pigz does);
- lz4 is one frame of independent blocks, compressed in parallel;
- snappy is one framed stream of chunks, compressed in parallel;
- zstd is one frame from zstd's own worker threads;
- bzip2 is one stream of blocks compressed in parallel and spliced bit-exactly (as lbzip2);
- xz is single-threaded (its one-stream form has no cheap parallel writer here).

Each format's module owns its factories (compressor, decompressor, bounded stream reader);
blocks holds the parallel plumbing the block formats share, streams the decompression
plumbing, codec the Codec type, registry the lookups by name, suffix and level.
"""

from __future__ import annotations

from core.codecs.codec import Codec, Compressor, Decompressor, Readable
from core.codecs.registry import CODECS, NAMED_LEVELS, codec_for_suffix, get_codec, parse_level

__all__ = [
    "CODECS",
    "NAMED_LEVELS",
    "Codec",
    "Compressor",
    "Decompressor",
    "Readable",
    "codec_for_suffix",
    "get_codec",
    "parse_level",
]
