"""CRC32C joined from the pieces' CRCs equals the CRC32C of the bytes, whatever the cut."""

from __future__ import annotations

import itertools
import random

import google_crc32c
import pytest

from core.restore.crc_join import Crc32cJoin

BS = 8192


@pytest.mark.parametrize("size", [0, 1, BS - 1, BS, BS + 1, 3 * BS, 1000 * BS + 17])
def test_zeros_are_the_crc_of_zero_bytes(size: int) -> None:
    assert Crc32cJoin(BS).zeros(size) == google_crc32c.value(bytes(size))


def test_pieces_joined_in_order_give_the_whole_crc() -> None:
    rng = random.Random(15)
    data = rng.randbytes(37 * BS + 123)
    join = Crc32cJoin(BS)
    for _ in range(20):
        cuts = sorted({0, len(data), *(rng.randrange(len(data)) for _ in range(5))})
        crc = 0
        for start, end in itertools.pairwise(cuts):
            crc = join.join(crc, google_crc32c.value(data[start:end]), end - start)
        assert crc == google_crc32c.value(data), cuts
