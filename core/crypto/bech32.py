"""Bech32 (BIP 173, without its 90-character limit) for age recipients and identities."""

from __future__ import annotations

from core.errors import InputError

_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_GENERATOR = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)


def _polymod(values: list[int]) -> int:
    check = 1
    for value in values:
        top = check >> 25
        check = (check & 0x1FFFFFF) << 5 ^ value
        for i, gen in enumerate(_GENERATOR):
            if (top >> i) & 1:
                check ^= gen
    return check


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def _convert_bits(data: bytes | list[int], from_bits: int, to_bits: int, pad: bool) -> list[int]:
    """Regroup bits; without padding, leftover bits must be zero and fewer than from_bits."""
    acc = bits = 0
    out: list[int] = []
    mask = (1 << to_bits) - 1
    for value in data:
        acc = (acc << from_bits) | value
        bits += from_bits
        while bits >= to_bits:
            bits -= to_bits
            out.append((acc >> bits) & mask)
    if pad and bits:
        out.append((acc << (to_bits - bits)) & mask)
    elif not pad and (bits >= from_bits or (acc << (to_bits - bits)) & mask):
        raise ValueError("non-zero padding")
    return out


def encode(hrp: str, data: bytes) -> str:
    """The Bech32 string of data under hrp, lower case."""
    values = _convert_bits(data, 8, 5, pad=True)
    polymod = _polymod([*_hrp_expand(hrp), *values, 0, 0, 0, 0, 0, 0]) ^ 1
    checksum = [(polymod >> 5 * (5 - i)) & 31 for i in range(6)]
    return hrp + "1" + "".join(_CHARSET[v] for v in values + checksum)


def decode(text: str, what: str) -> tuple[str, bytes]:
    """(hrp, data) of a Bech32 string; InputError naming `what` (never the text) if invalid."""
    if text.lower() != text and text.upper() != text:
        raise InputError(f"{what} mixes upper and lower case")
    lowered = text.lower()
    sep = lowered.rfind("1")
    if sep < 1 or len(lowered) - sep < 7:  # noqa: PLR2004 - separator plus six checksum chars
        raise InputError(f"{what} is not a Bech32 string")
    hrp, rest = lowered[:sep], lowered[sep + 1 :]
    if any(c not in _CHARSET for c in rest) or any(not 33 <= ord(c) <= 126 for c in hrp):  # noqa: PLR2004 - printable ASCII
        raise InputError(f"{what} has characters outside Bech32")
    values = [_CHARSET.index(c) for c in rest]
    if _polymod(_hrp_expand(hrp) + values) != 1:
        raise InputError(f"{what} has a bad checksum")
    try:
        return hrp, bytes(_convert_bits(values[:-6], 5, 8, pad=False))
    except ValueError:
        raise InputError(f"{what} has bad padding") from None
