"""Check-in codes: what a confirmed registrant shows at the door (API-integrations.md).

A code is 10 Crockford base32 characters, 50 random bits. Typed in by hand, it may come in lower
case, grouped with spaces or hyphens, or with the letters Crockford reads as digits (O as 0,
I and L as 1): `normalise` turns all of these into the stored form.
"""

import io
import secrets

import segno

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
LENGTH = 10
BITS_PER_CHARACTER = 5
# Pixels per module, and the quiet zone in modules (4 is what the QR standard asks for).
TICKET_SCALE = 10
TICKET_BORDER = 4
_CHARACTERS = frozenset(ALPHABET)
_READ_AS = str.maketrans({"O": "0", "I": "1", "L": "1", " ": None, "-": None})


def generate() -> str:
    """A new code: 50 bits from the operating system's random source."""
    bits = secrets.randbits(LENGTH * BITS_PER_CHARACTER)
    return "".join(
        ALPHABET[(bits >> (BITS_PER_CHARACTER * i)) & 0b11111] for i in reversed(range(LENGTH))
    )


def normalise(typed: str) -> str | None:
    """The stored form of a typed code, or None when it cannot be one."""
    code = typed.upper().translate(_READ_AS)
    if len(code) != LENGTH or not _CHARACTERS.issuperset(code):
        return None
    return code


def ticket_png(code: str) -> bytes:
    """A QR code holding exactly `code`, error correction level M, as a PNG."""
    qr = segno.make_qr(code, error="m", boost_error=False)
    out = io.BytesIO()
    qr.save(out, kind="png", scale=TICKET_SCALE, border=TICKET_BORDER)
    return out.getvalue()
