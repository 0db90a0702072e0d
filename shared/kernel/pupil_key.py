"""The keyed hash that lets the school service recognise a placed child among a school
organiser's pupils without either side learning anything it did not already know.

The placement service hashes the personnummer of each child with an open placement; the
school service's SS 12000 intake hashes each `civicNo` it reads from a source with the same
key and compares the two locally. The key (OBRUTEN_SS12000_MATCH_KEY) is held by those two
services only. The personnummer space is small (about 10^8 valid numbers), so whoever holds the
key and a hash can recover the number by trying them all: a hash is therefore treated as the
personnummer itself. It is never stored, logged, put in an event or sent to a source; the school
service keeps the hash list in memory for the length of one sync.
"""

from __future__ import annotations

import hashlib
import hmac
import re

# Versioned so that a change of normalisation or algorithm cannot silently match old hashes.
_DOMAIN = b"obruten-ss12000-match-v1:"
_TWELVE_DIGITS = re.compile(r"[0-9]{12}")


def normalise_civic_no(value: object) -> str | None:
    """The 12 ASCII digits SS 12000 prescribes (YYYYMMDDNNNC, no separator), or None.

    A separator between date and serial is tolerated; anything else (a 10-digit number, a
    temporary number with letters, non-ASCII digits) cannot be a child Obruten knows, since the
    placement service stores valid personnummer and samordningsnummer only, normalised alike."""
    if not isinstance(value, str):
        return None
    cleaned = value.strip()
    if len(cleaned) == 13 and cleaned[8] in "-+":
        cleaned = cleaned[:8] + cleaned[9:]
    return cleaned if _TWELVE_DIGITS.fullmatch(cleaned) else None


def pupil_key(secret: bytes, personnummer12: str) -> str:
    """HMAC-SHA256 of a normalised 12-digit number, as lowercase hex."""
    if not _TWELVE_DIGITS.fullmatch(personnummer12):
        raise ValueError("expects a normalised 12-digit number")
    return hmac.new(secret, _DOMAIN + personnummer12.encode("ascii"), hashlib.sha256).hexdigest()
