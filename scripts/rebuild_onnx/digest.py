"""sha256 of bytes, and the two ways a digest is checked: in full, or against an abbreviation (files:
`edge.models.sha256_file`, the function the device verifies its models with).

Documents quote long digests shortened, e.g. `d8ba40c0127f...443b`; a maintainer confirms the full value
the script pins against such a quote, so a typo in either place shows up.
"""

import hashlib
import re

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_ABBREV = re.compile(r"^([0-9a-f]+)(?:\.\.\.|…)([0-9a-f]+)$")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def digest_matches(actual: str, expected: str) -> bool:
    """True when `actual` (64 hex digits) is `expected`, given in full or as `prefix...suffix`.

    An abbreviation must keep at least 12 hex digits in all, so a quote of a few characters cannot pass.
    """
    actual, expected = actual.strip().lower(), expected.strip().lower()
    if not _HEX64.match(actual):
        raise ValueError(f"not a sha256 hex digest: {actual!r}")
    if _HEX64.match(expected):
        return actual == expected
    m = _ABBREV.match(expected)
    if m is None:
        raise ValueError(f"expected digest {expected!r} is neither 64 hex digits nor 'prefix...suffix'")
    head, tail = m.groups()
    if len(head) + len(tail) < 12 or len(head) + len(tail) > 64:
        raise ValueError(f"abbreviated digest {expected!r} must keep between 12 and 64 hex digits")
    return actual.startswith(head) and actual.endswith(tail)
