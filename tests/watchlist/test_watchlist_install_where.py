"""`edge watchlist install` without --state-dir says where it installed (the device's state_dir/watchlist)."""

from pathlib import Path

import pytest
from watchlist_helpers import Keys, MakeBundle

from edge.cli import main
from edge.keys import save_private, save_public


def test_install_without_state_dir_names_the_folder(tmp_path: Path, keys: Keys, make_bundle: MakeBundle,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    save_private(keys.device, tmp_path / "device_encryption.key")
    save_public(keys.hq.public_key(), tmp_path / "hq_signing.pub")
    state = tmp_path / "state"
    device = tmp_path / "edge.toml"
    device.write_text(f'[device]\nid = "cam-01"\nstate_dir = "{state}"\n'
                      f'encryption_key = "{tmp_path / "device_encryption.key"}"\n'
                      f'hq_public_key = "{tmp_path / "hq_signing.pub"}"\n'
                      '[embedder]\nmodel = "mobilefacenet_192"\n[watchlist]\nfollow = ["wl"]\n')
    bundle = tmp_path / "wl.bundle"
    bundle.write_bytes(make_bundle())
    assert main(["watchlist", "install", str(bundle), "--config", str(device)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("installed:") and f"(in {state / 'watchlist'})" in out
    assert (state / "watchlist").is_dir()
    with pytest.raises(SystemExit):
        main(["watchlist", "install", "--help"])
    assert "/var/lib/edge/watchlist" in " ".join(capsys.readouterr().out.split())
