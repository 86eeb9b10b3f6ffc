"""`edge replay --watchlist`: an agency reviews footage against the signed, encrypted list a device would get."""

import json
from pathlib import Path

from edge.cli import main
from edge.demo.trial import TrialFleet


def test_replay_against_a_signed_bundle(tmp_path: Path, demo_dir: Path, capsys):
    fleet = TrialFleet(tmp_path / "fleet")
    fleet.init_hq_keys()
    device_dir = fleet.provision_device("cam")
    bundle = fleet.build_watchlist(["cam"], demo_dir, {"lin-manuel-miranda.png": "Lin-Manuel Miranda",
                                                       "alex-lacamoire.png": "Alex Lacamoire"}, 1,
                                   tmp_path / "wl.bundle")
    capsys.readouterr()
    args = ["replay", "--source", str(demo_dir / "short_hamilton_clip.mp4"), "--watchlist", str(bundle),
            "--encryption-key", str(device_dir / "device_encryption.key"), "--json"]
    assert main([*args, "--hq-pub", str(fleet.hq / "hq_signing.pub")]) == 0
    alerts = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert alerts and {a["person"] for a in alerts} == {"Lin-Manuel Miranda"}
    assert {a["subject_id"] for a in alerts} == {"DEMO-001"}

    # signed by someone else: refused, nothing replayed
    fleet.run("hq", "keys", "init", "--out", str(tmp_path / "other-hq"))
    assert main([*args, "--hq-pub", str(tmp_path / "other-hq" / "hq_signing.pub")]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "refused" in err
