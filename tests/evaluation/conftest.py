"""A small real 1:N set built from LFW (links, not copies) and a disk cache shared by the evaluation tests."""

from pathlib import Path

import pytest

# Five people with 2-3 photos (the watchlist) and three single-photo people (passers-by), one of them
# a known LFW label-noise case.
LISTED = ("Aaron_Sorkin", "Abdullah_al-Attiyah", "Adam_Scott", "Adel_Al-Jubeir", "Adolfo_Aguilar_Zinser")
PASSERS_BY = ("Abdel_Madi_Shabneh", "Dean_Barker", "Wang_Nan")


@pytest.fixture(scope="session")
def lfw_slice(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("lfw-slice")
    for person in LISTED + PASSERS_BY:
        folder = root / person
        folder.mkdir()
        for photo in sorted((data_dir / "lfw" / person).iterdir()):
            (folder / photo.name).symlink_to(photo)
    return root


@pytest.fixture(scope="session")
def listed() -> tuple[str, ...]:
    return LISTED


@pytest.fixture(scope="session")
def passers_by() -> tuple[str, ...]:
    return PASSERS_BY


@pytest.fixture(scope="session")
def eval_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("eval-cache")
