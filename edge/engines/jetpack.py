"""Which JetPack a Jetson runs, read from /etc/nv_tegra_release. Standard library only: scripts/flash
uses it on the flashing host too."""

import re

# Jetson Linux (L4T) release -> JetPack. JetPack 6 (Ubuntu 22.04, Python 3.10) is the oldest with the
# Python this firmware needs; JetPack 5 ships Python 3.8.
L4T_TO_JETPACK: dict[str, str] = {
    "36.3.0": "6.0",
    "36.4.0": "6.1",
    "36.4.3": "6.2",
    "36.4.4": "6.2.1",
}

_RELEASE = re.compile(r"^#\s*R(\d+)\s*\(release\),\s*REVISION:\s*(\d+)\.(\d+)", re.MULTILINE)


def parse_l4t_release(text: str) -> str | None:
    """'# R36 (release), REVISION: 4.0, GCID: …' -> '36.4.0'; None when the text is not such a line."""
    match = _RELEASE.search(text)
    if match is None:
        return None
    major, minor, patch = match.groups()
    return f"{int(major)}.{int(minor)}.{int(patch)}"


def jetpack_for(l4t: str) -> str | None:
    return L4T_TO_JETPACK.get(l4t)
