"""Every codec by name and by object suffix, and barman-cloud's compression levels."""

from __future__ import annotations

from core.codecs.bzip2 import BZIP2
from core.codecs.codec import Codec
from core.codecs.gzip import GZIP
from core.codecs.lz4 import LZ4
from core.codecs.snappy import SNAPPY
from core.codecs.xz import XZ
from core.codecs.zstd import ZSTD
from core.errors import InputError

CODECS: dict[str, Codec] = {codec.name: codec for codec in (GZIP, BZIP2, XZ, SNAPPY, LZ4, ZSTD)}
NAMED_LEVELS = ("low", "medium", "high")


def get_codec(name: str | None) -> Codec | None:
    """The codec for a compression name; None means no compression."""
    if name is None or name == "none":
        return None
    try:
        return CODECS[name]
    except KeyError:
        raise InputError(f"unknown compression {name!r}") from None


def codec_for_suffix(filename: str) -> tuple[str, Codec | None]:
    """Split a known compression suffix off a name: ('000…01', zstd) or (name, None)."""
    for codec in CODECS.values():
        if filename.endswith(codec.suffix):
            return filename[: -len(codec.suffix)], codec
    return filename, None


def parse_level(codec: Codec, text: str | None) -> int | None:
    """barman-cloud's --compression-level: low, medium, high or an integer (clamped)."""
    if text is None:
        return None
    if text in NAMED_LEVELS:
        return codec.levels[NAMED_LEVELS.index(text)]
    try:
        return codec.clamp(int(text))
    except ValueError:
        raise InputError(
            f"invalid compression level {text!r}: low, medium, high or a number"
        ) from None
