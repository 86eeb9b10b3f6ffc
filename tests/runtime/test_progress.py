"""Long steps show progress in a log too: whole lines every 10 % (or 10 s) when stderr is not a terminal."""

import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

from edge.runtime.progress import LineProgress, progress

REPO = Path(__file__).resolve().parents[2]


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_lines_every_tenth_and_every_ten_seconds():
    out, clock = io.StringIO(), Clock()
    bar = LineProgress(total=200, desc="detecting", unit="img", stream=out, clock=clock)
    for _ in range(20):
        bar.update()
    assert out.getvalue() == "", "a tenth done within a second: no line yet"
    clock.t = 1.0
    bar.update()
    assert out.getvalue() == "detecting: 21/200 img (10 %), 1 s\n"
    clock.t = 11.5  # slow work: a line every 10 s even before the next tenth
    bar.update()
    assert out.getvalue().splitlines()[-1] == "detecting: 22/200 img (11 %), 12 s"
    for _ in range(178):
        clock.t += 0.1
        bar.update()
    bar.close()
    lines = out.getvalue().splitlines()
    assert [line.split(" img")[0] for line in lines] == [
        "detecting: 21/200", "detecting: 22/200", *(f"detecting: {n}/200" for n in range(40, 201, 20))]


def test_iterating_without_a_total_reports_the_count_at_the_end():
    out = io.StringIO()
    assert list(LineProgress(iter(range(3)), desc="reading", unit="img", stream=out)) == [0, 1, 2]
    assert out.getvalue() == "reading: 3 img, 0 s\n"


def test_a_terminal_gets_a_bar_and_a_quiet_run_nothing():
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty = Tty()
    with progress(total=3, desc="x", stream=tty) as bar:
        bar.update(3)
    assert tty.getvalue().startswith("\rx:   0%")  # tqdm redraws in place (leave=False: then erases)
    quiet = io.StringIO()
    with progress(total=3, desc="x", stream=quiet, enabled=False) as bar:
        bar.update(3)
    assert quiet.getvalue() == ""


def test_a_command_piped_to_a_log_prints_progress_lines(tmp_path: Path, data_dir: Path):
    """`edge replay --enroll` with stderr a pipe (CI, systemd): whole lines (quick work: the last one only)."""
    people = tmp_path / "people"
    people.mkdir()
    photos = sorted((data_dir / "lfw" / "George_W_Bush").iterdir())[:10]
    for photo in photos:
        shutil.copy(photo, people / f"george-w-bush-{photo.stem[-4:]}{photo.suffix}")
    run = subprocess.run([sys.executable, "-m", "edge", "replay", "--enroll", str(people), "--source",
                          str(photos[0])], cwd=REPO, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert run.returncode == 0, run.stderr
    assert "\r" not in run.stderr, "no redraws in a log"
    lines = [line for line in run.stderr.splitlines() if line.startswith("enrolling: ")]
    assert lines and lines[-1].startswith("enrolling: 10/10 photo (100 %), "), run.stderr
