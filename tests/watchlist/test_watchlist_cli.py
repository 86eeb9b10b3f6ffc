"""End to end with real photos and the real models: keys, provisioning, build, inspect, install, match."""

import shutil
import stat
from pathlib import Path

import pytest

from edge.cli import main
from edge.config.device import DeviceConfig
from edge.config.tomlio import load_toml
from edge.config.watchlist import WatchlistConfig
from edge.keys import load_encryption_private, load_signing_public
from edge.watchlist.embedders import DeviceEmbedders
from edge.watchlist.match import match
from edge.watchlist.store import WatchlistStore

ROWS = [
    "P-001,Lin-Manuel Miranda,wanted,CASE-2025-001,Court order 17/2025,Insp. Kaur,2030-01-01,lin-manuel-miranda.png",
    "P-002,Alex Lacamoire,missing,CASE-2025-002,Missing person report 88,Insp. Kaur,2030-01-01,alex-lacamoire.png",
    "P-003,Barack Obama,suspect,CASE-2025-003,Warrant 5/2025,Supt. Mills,2030-01-01,obama.jpg;two_people.jpg",
    "P-004,Joe Biden,wanted,CASE-2025-004,Warrant 6/2025,Supt. Mills,2030-01-01,biden.jpg",
]
HEADER = "subject_id,label,category,case_reference,legal_basis,approver,expires,photos"


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """HQ keys and two provisioned devices, made with the real commands."""
    root = tmp_path_factory.mktemp("fleet")
    assert main(["hq", "keys", "init", "--out", str(root / "hq")]) == 0
    for device in ("cam-01", "cam-02"):
        assert main(["device", "provision", "--id", device, "--hq-pub", str(root / "hq" / "hq_signing.pub"),
                     "--out", str(root / device)]) == 0
    return root


@pytest.fixture(scope="module")
def photos(demo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("photos")
    for name in ("lin-manuel-miranda.png", "alex-lacamoire.png", "obama.jpg", "biden.jpg", "two_people.jpg"):
        shutil.copy(demo_dir / name, folder / name)
    shutil.copy(demo_dir.parent / "dlib_faces" / "dogs.jpg", folder / "dogs.jpg")
    return folder


def build(fleet: Path, photos: Path, rows: list[str], out: Path, *extra: str) -> int:
    csv = out.with_suffix(".csv")
    csv.write_text("\n".join([HEADER, *rows]) + "\n")
    return main(["watchlist", "build", "--photos", str(photos), "--entries", str(csv), "--hq-key",
                 str(fleet / "hq" / "hq_signing.key"), "--recipients", str(fleet / "cam-01"),
                 f"cam-02={fleet / 'cam-02' / 'device_encryption.pub'}", "--list-version", "1",
                 "--expires", "2029-12-31", "--out", str(out), *extra])


def test_keys_and_provisioned_layout(fleet: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for path in [fleet / "hq" / "hq_signing.key", fleet / "cam-01" / "device_signing.key",
                 fleet / "cam-01" / "device_encryption.key"]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    device = DeviceConfig(**load_toml(fleet / "cam-01" / "device.toml")["device"])
    assert device.id == "cam-01" and device.encryption_key == (fleet / "cam-01" / "device_encryption.key").resolve()
    load_encryption_private(device.encryption_key)
    assert (fleet / "cam-01" / "hq_signing.pub").read_bytes() == (fleet / "hq" / "hq_signing.pub").read_bytes()
    assert main(["hq", "keys", "init", "--out", str(fleet / "hq")]) == 2  # never overwrites a key
    assert main(["device", "provision", "--id", "bad/id", "--hq-pub", str(fleet / "hq" / "hq_signing.pub"),
                 "--out", str(fleet / "x")]) == 2
    assert main(["device", "provision", "--id", "cam-09", "--hq-pub", str(fleet / "cam-01" / "device_encryption.pub"),
                 "--out", str(fleet / "y")]) == 2  # not an Ed25519 key
    err = capsys.readouterr().err
    assert "refusing to overwrite" in err and "not allowed" in err and "not an Ed25519 signing public key" in err


def test_build_inspect_install_and_match_real_photos(fleet: Path, photos: Path, demo_dir: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    bundle = tmp_path / "list.bundle"
    assert build(fleet, photos, ROWS, bundle) == 0
    out = capsys.readouterr()
    assert "row 4 (subject P-003): photo two_people.jpg rejected: several_faces" in out.out
    assert "enrolling" in out.err  # the progress bar

    assert main(["watchlist", "inspect", str(bundle)]) == 0
    header_only = capsys.readouterr().out
    assert "entry_count: 4" in header_only and "recipient: cam-01" in header_only and "recipient: cam-02" in header_only
    assert "Barack Obama" not in header_only and "signature: not checked" in header_only
    assert main(["watchlist", "inspect", str(bundle),
                 "--encryption-key", str(fleet / "cam-02" / "device_encryption.key"),
                 "--hq-pub", str(fleet / "hq" / "hq_signing.pub")]) == 0
    full = capsys.readouterr().out
    assert "signature: valid" in full
    assert "P-003 | Barack Obama | suspect | case CASE-2025-003 | legal basis Warrant 5/2025" in full

    state_dir = tmp_path / "cam-01-state"
    device_toml = fleet / "cam-01" / "device.toml"
    assert main(["watchlist", "install", str(bundle), "--config", str(device_toml), "--state-dir", str(state_dir),
                 "--follow", "default"]) == 0
    assert capsys.readouterr().out.startswith("installed: watchlist default version 1: 4 entries")
    assert main(["watchlist", "install", str(bundle), "--config", str(device_toml), "--state-dir", str(state_dir),
                 "--follow", "default"]) == 0
    assert capsys.readouterr().out.startswith("unchanged")
    tampered = tmp_path / "tampered.bundle"
    data = bytearray(bundle.read_bytes())
    data[-100] ^= 0x01
    tampered.write_bytes(bytes(data))
    assert main(["watchlist", "install", str(tampered), "--config", str(device_toml), "--state-dir",
                 str(state_dir), "--follow", "default"]) == 2
    assert main(["watchlist", "inspect", str(tampered), "--hq-pub", str(fleet / "hq" / "hq_signing.pub")]) == 2
    err = capsys.readouterr().err
    assert "refused (bad_signature)" in err and "kept version 1 of default" in err

    from edge.vision.enroll import Enroller

    enroller = Enroller.open()
    device = DeviceConfig(**load_toml(device_toml)["device"])
    store = WatchlistStore.open(state_dir, device_key=load_encryption_private(device.encryption_key),
                                hq_public=load_signing_public(device.hq_public_key),
                                embedders=DeviceEmbedders.only(enroller.model_name, enroller.model_sha256),
                                config=WatchlistConfig(follow=("default",)))
    wl = store.current
    assert wl is not None and wl.subject(2).legal_basis == "Warrant 5/2025"
    assert wl.subject(2).thumbnail[:2] == b"\xff\xd8"  # a JPEG of the aligned face, for the handheld
    probes = [demo_dir / "knn_examples" / "test" / "obama1.jpg", demo_dir / "knn_examples" / "train" / "biden" /
              "biden2.jpg", demo_dir / "knn_examples" / "test" / "alex_lacamoire1.jpg"]
    embeddings = [enroller.enroll(p).embedding for p in probes]
    results = match(wl.gallery, embeddings, now=0.0)
    assert [r.best.subject_id for r in results] == ["P-003", "P-004", "P-002"]
    assert all(r.best.score > 0.5 and r.margin > 0.2 for r in results)


def test_row_without_usable_photo_is_refused_with_its_row(fleet: Path, photos: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    rows = [*ROWS[:2], "P-009,Nobody,wanted,CASE-9,Warrant 9/2025,Insp. Kaur,2030-01-01,dogs.jpg;two_people.jpg"]
    bundle = tmp_path / "list.bundle"
    assert build(fleet, photos, rows, bundle) == 2
    captured = capsys.readouterr()
    assert "row 4 (subject P-009): photo dogs.jpg rejected: no_face" in captured.out
    assert "row 4 (subject P-009): no usable photo (2 rejected)" in captured.err and not bundle.exists()
    assert build(fleet, photos, rows, bundle, "--skip-refused") == 0
    assert "left out: row 4 (subject P-009)" in capsys.readouterr().out
    assert main(["watchlist", "inspect", str(bundle)]) == 0
    assert "entry_count: 2" in capsys.readouterr().out


def test_row_without_legal_basis_is_refused_before_enrollment(fleet: Path, photos: Path, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    rows = [ROWS[0], "P-002,Alex Lacamoire,missing,CASE-2025-002,,Insp. Kaur,2030-01-01,alex-lacamoire.png"]
    assert build(fleet, photos, rows, tmp_path / "list.bundle") == 2
    err = capsys.readouterr().err
    assert "row 3 (subject P-002): no legal basis" in err and "enrolling" not in err
