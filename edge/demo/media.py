"""Sample media for the demo: a given folder, the shared evaluation data, or a pinned public download."""

import hashlib
import logging
import urllib.request
from pathlib import Path

from edge.cliargs import DEFAULT_DATA_ROOT, data_root
from edge.errors import EdgeError

log = logging.getLogger(__name__)

# ageitgey/face_recognition (MIT repository; the clip is film footage), pinned to one commit.
SOURCE = "https://raw.githubusercontent.com/ageitgey/face_recognition/f37e636e22306d4efcc35fb1ef33d47183cfc5e7/examples/"
FILES = {
    "short_hamilton_clip.mp4": "0b5ff4c55a4cd69f79956f312681730881fe1e2a9e6146e75c31636dffcc7e28",
    "lin-manuel-miranda.png": "1f29c132951d7741431b32aaaf569d79a11bc690b04b843f12b7e306f080599a",
    "alex-lacamoire.png": "affd4bba70510b20286c5b392e6a73ef149f4dff02105a09e19ce80d7d138707",
}
CLIP = "short_hamilton_clip.mp4"
PEOPLE = {"lin-manuel-miranda.png": "Lin-Manuel Miranda", "alex-lacamoire.png": "Alex Lacamoire"}


def _complete(folder: Path) -> bool:
    return all((folder / name).is_file() for name in FILES)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def find_media(given: Path | None, cache: Path) -> Path:
    """--media, else $EDGE_TEST_DATA/demo, else ../shared/data/demo beside a checkout, else a verified download."""
    if given is not None:
        if not _complete(given):
            raise EdgeError(f"--media {given} must hold {', '.join(FILES)}")
        return given
    for folder in (data_root() / "demo", DEFAULT_DATA_ROOT / "demo"):
        if _complete(folder):
            return folder
    return download(cache)


def download(cache: Path) -> Path:
    """Fetch each file once into `cache`, refusing any whose sha256 is not the pinned one."""
    cache.mkdir(parents=True, exist_ok=True)
    for name, digest in FILES.items():
        target = cache / name
        if target.is_file() and _sha256(target) == digest:
            continue
        log.warning("downloading demo media %s", name)
        partial = target.with_suffix(target.suffix + ".partial")
        try:
            with urllib.request.urlopen(SOURCE + name, timeout=60) as response, open(partial, "wb") as out:
                out.write(response.read())
        except OSError as exc:
            raise EdgeError(f"could not download demo media {name} from {SOURCE}: {exc}; pass --media <folder> "
                            f"holding {', '.join(FILES)} or set EDGE_TEST_DATA") from exc
        if _sha256(partial) != digest:
            partial.unlink()
            raise EdgeError(f"downloaded {name} does not have the pinned sha256 {digest}: refusing it")
        partial.replace(target)
    return cache
