"""Every `edge` command and option says what it does, and an option's name means one thing in every command:
`--json` is always the switch for JSON on stdout (a JSON file to write is `--report FILE`), `--key` always a TLS
client's private key (a device's decryption key is `--encryption-key`), `--device` always a device id (a device's
TOML is `--config`). A new option must be entered in MEANINGS, with the kind of value it takes everywhere."""

import argparse
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge import __version__
from edge.cli import build_parser, main

# name: (kind of value, the one meaning, a pattern every use's help must match (None: the meaning is the name's))
MEANINGS: dict[str, tuple[str, str, str | None]] = {
    "--acl": ("path", "the broker ACL file to regenerate", r"ACL"),
    "--at-thresholds": ("text", "extra thresholds to report at, comma separated", r"thresholds"),
    "--backend": ("text", "inference runtime", r"runtime"),
    "--batch": ("text", "embedder batch sizes", None),
    "--bind": ("text", "address to serve on", None),
    "--blur": ("text", "Gaussian sigmas to sweep", None),
    "--blur-level": ("float", "eye distance of the blur sweep", None),
    "--broker": ("text", "the MQTT broker, HOST[:PORT], TLS", r"MQTT|broker"),
    "--broker-pid": ("path", "mosquitto's pid file", None),
    "--ca": ("path", "the fleet CA certificate to trust (ca.crt)", r"CA certificate"),
    "--ca-dir": ("path", "the CA folder that signs (from `edge hq pki init`)", r"CA folder"),
    "--cache": ("path", "folder keeping faces and embeddings between runs", None),
    "--calib-dir": ("path", "int8 calibration frames", None),
    "--calib-images": ("int", "int8 calibration count", None),
    "--cert": ("path", "this TLS client's certificate", r"certificate"),
    "--check": ("switch", "validate and exit, changing nothing", None),
    "--chunk-kb": ("int", "bundle chunk size", None),
    "--clip": ("text", "a video file", r"video"),
    "--config": ("path", "this component's TOML configuration", r"TOML|\.toml"),
    "--days": ("int", "certificate validity in days", r"days"),
    "--data": ("path", "the shared evaluation data folder ($EDGE_TEST_DATA)", r"EDGE_TEST_DATA"),
    "--db": ("text", "the HQ event store: SQLite file or postgresql:// URL", r"SQLite"),
    "--decision": ("text", "the per-track decision rule ([track] decision)", r"aggregate"),
    "--demographics": ("path", "the demographics data folder", r"demographics"),
    "--detector-size": ("text", "detector engine input size", None),
    "--dir": ("path", "the folder a command works in", None),
    "--device": ("text", "a device id", r"\bid\b"),
    "--device-keys": ("path", "folder of devices' public keys as provisioning lays them out", r"public keys"),
    "--dry-run": ("switch", "print what would be done, do nothing", None),
    "--dtype": ("text", "embedding storage type", r"storage"),
    "--embedder": ("text", "an embedder model name from engines/models.toml", r"embedder model"),
    "--encryption-key": ("path", "a device's decryption key, device_encryption.key", r"device_encryption\.key"),
    "--engine-dir": ("path", "the TensorRT engine folder", r"engines"),
    "--enroll": ("path", "folder of photos to enroll", r"photos"),
    "--entries": ("path", "the watchlist entries CSV", r"CSV"),
    "--events": ("int", "how many events to send", r"events"),
    "--exclude-known-label-noise": ("switch", "leave out LFW's known label errors", None),
    "--expires": ("text", "an ISO 8601 expiry time", r"ISO 8601"),
    "--faces": ("int", "faces per benchmark frame", None),
    "--fleet": ("text", "a fleet name", r"fleet"),
    "--flip": ("text", "flip-test variants", r"none|enroll"),
    "--force": ("switch", "replace what exists", r"replace"),
    "--fpirs": ("text", "FPIRs, comma separated", None),
    "--gallery": ("path", "gallery photo folder, one sub-folder per person", r"per person"),
    "--gallery-size": ("int", "watchlist size (entries)", r"watchlist|list"),
    "--group": ("text", "MQTT shared subscription group", None),
    "--handheld": ("text", "a handheld id", r"\bid\b"),
    "--hq-key": ("path", "HQ's signing private key, hq_signing.key", r"hq_signing\.key"),
    "--hq-pub": ("path", "HQ's signing public key, hq_signing.pub", r"HQ|hq_signing\.pub"),
    "--id": ("text", "this identity's id", r"\bid\b"),
    "--if-missing": ("switch", "only what is missing", None),
    "--json": ("switch", "print JSON on stdout instead of text", r"JSON|payload"),
    "--key": ("path", "this TLS client's private key", r"private key"),
    "--key-dir": ("path", "where the key files live on the device", None),
    "--keys": ("path", "folder of provisioning folders (public keys)", r"public keys"),
    "--kind": ("text", "an event kind", r"kind"),
    "--levels": ("text", "eye distances, comma separated", None),
    "--lfw": ("path", "the LFW folder", r"LFW"),
    "--listed": ("int", "watchlist size: the first N people", r"watchlist"),
    "--limit": ("int", "at most this many", r"at most"),
    "--list-version": ("int", "a watchlist's version number", r"version"),
    "--log": ("path", "an audit log file", r"log"),
    "--long-side": ("text", "detector input long side", r"long side"),
    "--manifest-dir": ("path", "the folder with models.toml", r"models\.toml"),
    "--manual": ("switch", "a person decides on the handheld page", None),
    "--media": ("path", "the demo media folder", None),
    "--million": ("int", "size of the large list", r"entries"),
    "--min-images": ("int", "photos a person needs to be enrolled", None),
    "--model": ("text", "a model name from models.toml", r"models\.toml"),
    "--name": ("text", "an extra DNS name of the broker", None),
    "--no-baseline": ("switch", "skip the face_recognition baseline", None),
    "--no-refine": ("switch", "no full-resolution look at small faces", r"full-resolution"),
    "--no-signatures": ("switch", "check the chain only", None),
    "--no-stream": ("switch", "skip the stream workload", None),
    "--no-thumbnails": ("switch", "leave thumbnails out", None),
    "--not-before": ("text", "an ISO 8601 start time", r"ISO 8601"),
    "--officer": ("text", "an officer's name", r"officer"),
    "--officer-pin": ("text", "an officer whose PIN to ask for", r"PIN"),
    "--out": ("path", "where the command writes its output (file or folder)", r"write|folder|table"),
    "--pairs": ("path", "LFW pairs.txt", None),
    "--people": ("path", "a photo folder, one sub-folder per person", r"per person"),
    "--per-class": ("int", "pairs per class and fold", None),
    "--photos": ("path", "the folder photo names are relative to", r"photo"),
    "--pins-from": ("path", "a file of ID=PIN lines", r"PIN"),
    "--plot": ("path", "a PNG plot to write", r"PNG"),
    "--profile": ("text", "a camera profile of generated video", r"camera"),
    "--port": ("int", "the handheld page's TCP port", r"port"),
    "--precision": ("text", "engine precision", None),
    "--probes": ("path", "probe photo folder, one sub-folder per person", r"per person"),
    "--probes-per-class": ("int", "mated probes, and as many non-mated", None),
    "--probes-per-level": ("int", "probes per level", None),
    "--pub": ("path", "a device's audit public key (PEM)", r"public key"),
    "--recipients": ("text", "the devices a bundle is sealed for", None),
    "--records": ("int", "records in the benchmark log", r"records"),
    "--registry": ("path", "the fleet registry (JSON)", r"registry"),
    "--rejected": ("switch", "list refused messages instead", None),
    "--retry-refused": ("switch", "ingest the refused messages again", None),
    "--repeats": ("int", "repetitions of a measurement", r"repetitions|random subsets"),
    "--report": ("path", "a JSON file to write the figures or report to", r"JSON"),
    "--role": ("text", "the client's role", None),
    "--runs": ("int", "timed runs, the best reported", r"best"),
    "--scope": ("text", "who a list is for, in words", None),
    "--seed": ("int", "a random seed", r"random seed"),
    "--seconds": ("float", "seconds of video", r"seconds of video"),
    "--since": ("text", "an ISO time or a span back", r"ISO time"),
    "--size": ("text", "frame size WIDTHxHEIGHT", r"WIDTHxHEIGHT"),
    "--sizes": ("text", "gallery sizes, comma separated", None),
    "--skip-refused": ("switch", "leave out rows without a usable photo", None),
    "--source": ("text", "a frame source (file, folder, camera or stream)", r"video|source"),
    "--state-dir": ("path", "the device's state folder (or its watchlist folder)", r"folder"),
    "--status": ("switch", "list device statuses instead", None),
    "--storage": ("text", "gallery storage type", r"storage"),
    "--stream-runs": ("int", "passes over the clip", None),
    "--streams": ("int", "cameras (video streams) run at once", r"cameras at once"),
    "--stride": ("int", "detect every Nth frame", r"every Nth frame"),
    "--sync": ("text", "SQLite sync mode", None),
    "--threads": ("int", "inference threads", r"threads"),
    "--threshold": ("float", "a fixed cosine threshold", r"threshold"),
    "--timeout": ("float", "seconds to wait", r"seconds"),
    "--timing-cache": ("path", "the TensorRT timing cache file", None),
    "--two-officer-rule": ("switch", "two officers must confirm", None),
    "--unpair": ("switch", "remove the pairing", None),
    "--verbose": ("switch", "more log output", None),
    "--verify": ("text", "when to compare engines with ONNX Runtime", None),
    "--verify-samples": ("int", "images compared per profile", None),
    "--version": ("switch", "print edge's version", r"version"),
    "--wait": ("switch", "wait for a live source", r"wait"),
    "--watchlist": ("path", "a watchlist bundle file", r"bundle"),
    "--watchlist-id": ("text", "a watchlist id", None),
    "--workdir": ("path", "a working folder to keep", None),
    "--workers": ("int", "HQ ingest workers", None),
    "--workspace-mib": ("int", "TensorRT builder workspace", None),
    "--write-calibration": ("switch", "write the calibration table", None),
    "--anchor": ("text", "an audit head SEQ:HASH announced outside the log", r"head"),
    "--follow": ("text", "watchlist ids a device takes, highest precedence first", r"watchlist ids"),
    "--hq-role": ("text", "what an HQ client may do on the broker", r"publisher, ingest, pairing"),
    "--pki": ("path", "the folder with the broker's CA and certificate", r"ca\.crt"),
    "--tls-dir": ("path", "where a device's TLS files live on it", r"TLS"),
    "--valid-for": ("float", "seconds a signed freshness statement stays valid", r"lifetime"),
}


def kind(action: argparse.Action) -> str:
    if action.nargs == 0:
        return "switch"
    if action.type is Path:
        return "path"
    if action.type in (int, float):
        return action.type.__name__
    return "text"


def commands(parser: argparse.ArgumentParser, path: str = "edge") -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                assert helps.get(name), f"`{path} {name}` has no help line"
                yield from commands(sub, f"{path} {name}")


def options() -> Iterator[tuple[str, argparse.Action]]:
    """Every option and positional of every command, but -h and the hidden old spellings of renamed options."""
    for path, parser in commands(build_parser()):
        for action in parser._actions:
            if not isinstance(action, argparse._SubParsersAction | argparse._HelpAction) \
                    and action.help != argparse.SUPPRESS:
                yield path, action


def test_every_option_and_argument_has_help():
    missing = [f"{path} {'/'.join(a.option_strings) or a.dest}" for path, a in options() if not (a.help or "").strip()]
    assert missing == []


def test_each_option_name_means_one_thing_everywhere():
    wrong = []
    for path, action in options():
        for name in (n for n in action.option_strings if n.startswith("--")):
            if name not in MEANINGS:
                wrong.append(f"{path} {name}: not in MEANINGS; give it a meaning (or reuse a name whose meaning fits)")
                continue
            want, meaning, pattern = MEANINGS[name]
            if kind(action) != want:
                wrong.append(f"{path} {name} takes {kind(action)}, elsewhere {want} ({meaning})")
            if pattern and not re.search(pattern, action.help or ""):
                wrong.append(f"{path} {name}: help {action.help!r} does not read as {meaning!r}")
    assert wrong == []


def test_version():
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0


def test_version_output(capsys):
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.strip() == f"edge {__version__}"


@pytest.mark.parametrize("command, argv, unknown", [
    ("edge replay", ["--source", "x", "--bogus"], "--bogus"),
    ("edge eval verify", ["--lfw", "x", "--pairs", "y", "--key", "k"], "--key k"),
    ("edge bench watchlist", ["--faces", "3"], "--faces 3"),
    ("edge hq pki issue", ["--role", "hq", "--id", "a", "--ca-dir", "c", "--out", "o", "--nope"], "--nope"),
])
def test_an_unknown_option_shows_the_commands_own_usage(command, argv, unknown, capsys):
    with pytest.raises(SystemExit) as done:
        main([*command.split()[1:], *argv])
    err = capsys.readouterr().err
    assert done.value.code == 2 and err.startswith(f"usage: {command} "), err
    assert err.rstrip().endswith(f"{command}: error: unrecognized arguments: {unknown}"), err


@pytest.mark.parametrize("argv, dest, new", [
    (["watchlist", "inspect", "b.bundle", "--key", "k"], "key", "--encryption-key"),
    (["watchlist", "install", "b.bundle", "--device", "d.toml"], "device", "--config"),
    (["eval", "verify", "--lfw", "x", "--pairs", "y", "--json", "r.json"], "report", "--report"),
    (["hq", "pki", "issue", "--role", "hq", "--id", "a", "--ca", "c", "--out", "o"], "ca", "--ca-dir"),
])
def test_old_spellings_still_work_and_name_the_new_one(argv, dest, new, capsys):
    args = build_parser().parse_args(argv)
    old = next(a for a in argv if a.startswith("--") and a not in ("--lfw", "--pairs", "--role", "--id", "--out"))
    assert getattr(args, dest) == Path(argv[argv.index(old) + 1])
    assert f"warning: {old} is now {new}" in capsys.readouterr().err


@pytest.mark.parametrize("argv, old, new", [
    (["eval", "verify", "--lfw", "x", "--pairs", "y", "--json"], "--json", "--report"),
    (["demo", "--json"], "--json", "--report"),
    (["bench", "--json"], "--json", "--report"),
    (["watchlist", "build", "--photos", "p", "--entries", "e", "--hq-key", "k", "--recipients", "r",
      "--watchlist-id", "w", "--out", "o", "--version"], "--version", "--list-version"),
])
def test_an_old_spelling_given_alone_says_what_it_is_now(argv, old, new, capsys):
    """`--json` as the switch it is elsewhere, or `--version` after a command, is not "expected one argument"."""
    with pytest.raises(SystemExit) as done:
        build_parser().parse_args(argv)
    err = capsys.readouterr().err
    assert done.value.code == 2 and f"{old} alone is not an option of this command" in err and new in err, err
    assert "expected one argument" not in err
