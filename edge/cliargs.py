"""What the command modules share, written once: the registry they add their commands to (`Commands`, each
group's help declared in one place), the model options (`--embedder`, `--long-side`, `--stride`, `--threads`,
`--backend`), the broker options (`--broker`, `--ca`, `--cert`, `--key`) and the shared data folder.

Commands only: stage packages take config models, never argparse namespaces. Command modules import this, never
edge.cli, which assembles them.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from edge.config.detector import DetectorConfig
from edge.config.embedder import EmbedderConfig
from edge.config.link import LinkConfig
from edge.config.runtime import RuntimeConfig
from edge.errors import ConfigError

if TYPE_CHECKING:
    from edge.vision.stack import VisionStack

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DATA_ROOT = REPO.parent / "shared" / "data"
DEFAULT_PORT = 8883
EMBEDDER_HELP = "embedder model from engines/models.toml"


class _Renamed(argparse.Action):
    """An option's old spelling: still accepted, with a warning naming the new one."""

    def __init__(self, option_strings: list[str], dest: str, new: str = "", **kwargs: object) -> None:
        super().__init__(option_strings, dest, **kwargs)  # type: ignore[arg-type]
        self.new = new

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object,
                 option_string: str | None = None) -> None:
        if values is None:  # used as what the name means elsewhere (`--json` the switch, `--version`): say so
            parser.error(f"{option_string} alone is not an option of this command{_ELSEWHERE.get(option_string, '')}; "
                         f"it takes {self.new} VALUE (formerly spelt {option_string} VALUE)")
        print(f"{parser.prog}: warning: {option_string} is now {self.new}; the old spelling will go", file=sys.stderr)
        setattr(namespace, self.dest, values)


_ELSEWHERE = {"--json": " (the switch for JSON on stdout in others)", "--version": " (`edge --version` prints edge's)"}


def add_renamed(parser: argparse.ArgumentParser, old: str, new: str, **kwargs: object) -> None:
    """Keep `old` working for scripts written before it became `new` (already added): hidden from --help."""
    current = next(a for a in parser._actions if new in a.option_strings)
    target: argparse._ActionsContainer = parser
    if current.required:  # either spelling satisfies it
        current.required = False
        target = parser.add_mutually_exclusive_group(required=True)
        target._group_actions.append(current)  # type: ignore[attr-defined]
    # nargs "?": the old name alone, as meant elsewhere, is an error that says so, not "expected one argument"
    target.add_argument(old, dest=current.dest, action=_Renamed, new=new, help=argparse.SUPPRESS,  # type: ignore[arg-type]
                        nargs="?", **kwargs)


def add_report_arg(parser: argparse.ArgumentParser, help: str, required: bool = False, dest: str = "report") -> None:
    """`--report FILE`: where a command writes its figures as JSON (`--json` is the switch for JSON on stdout)."""
    parser.add_argument("--report", type=Path, required=required, dest=dest, metavar="FILE", help=help)
    add_renamed(parser, "--json", "--report", type=Path)


def data_root() -> Path:
    """The evaluation and demo data: $EDGE_TEST_DATA, else ../shared/data beside the repository."""
    return Path(os.environ.get("EDGE_TEST_DATA", DEFAULT_DATA_ROOT))


def add_embedder_arg(parser: argparse.ArgumentParser, help: str = EMBEDDER_HELP) -> None:
    parser.add_argument("--embedder", default=EmbedderConfig().model, help=help)


def add_model_args(parser: argparse.ArgumentParser, *, threads: int = 1, stride: str | None = None,
                   threads_help: str = "inference threads per model") -> None:
    """The device's models as options; `stride` (its help) adds `--stride` for commands that track."""
    add_embedder_arg(parser)
    parser.add_argument("--long-side", default=str(DetectorConfig().long_side),
                        help="detector input long side, or 'full' for small, distant faces (default %(default)s)")
    parser.add_argument("--no-refine", action="store_true",
                        help="do not look again at small faces on the full-resolution frame ([detector] refine "
                             "= false)")
    if stride is not None:
        parser.add_argument("--stride", type=int, default=DetectorConfig().stride, help=stride)
    parser.add_argument("--threads", type=int, default=threads, help=threads_help)
    parser.add_argument("--backend", choices=["auto", "onnxruntime", "tensorrt"], default="auto",
                        help="inference runtime: auto = a TensorRT engine where one is built for this GPU, else "
                             "ONNX Runtime (default %(default)s)")


def model_configs(args: argparse.Namespace) -> tuple[DetectorConfig, EmbedderConfig, RuntimeConfig]:
    """The options of add_model_args as config models; a bad value is a ConfigError naming the options.

    `--stride` is left to the command: the pipeline takes it, the models do not.
    """
    stride = {"stride": args.stride} if getattr(args, "stride", None) is not None else {}  # checked, not used
    try:
        long_side: int | str = args.long_side if args.long_side == "full" else int(args.long_side)
        refine = not getattr(args, "no_refine", False)
        return (DetectorConfig(long_side=long_side, refine=refine, **stride), EmbedderConfig(model=args.embedder),
                RuntimeConfig(threads=args.threads, backend=args.backend))
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]).replace("_", "-")
        raise ConfigError(f"--{name} {getattr(args, name.replace('-', '_'))}: {first['msg']}") from exc
    except ValueError as exc:
        raise ConfigError(f"--long-side {args.long_side!r}: give a number of pixels, or 'full'") from exc


def stack_from_args(args: argparse.Namespace) -> VisionStack:
    """Open the detector and embedder the options of add_model_args name."""
    from edge.vision.stack import VisionStack  # loads ONNX Runtime: only for commands that run the models

    return VisionStack.open(*model_configs(args))


def add_broker_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--broker", required=True, metavar="HOST[:PORT]",
                        help=f"MQTT broker (TLS), port {DEFAULT_PORT} if omitted")
    parser.add_argument("--ca", type=Path, required=True, help="fleet CA certificate (ca.crt)")
    parser.add_argument("--cert", type=Path, required=True, help="this client's certificate, e.g. hq-ingest.crt")
    parser.add_argument("--key", type=Path, required=True, help="this client's private key")


def parse_broker(text: str) -> tuple[str, int]:
    """`--broker HOST[:PORT]` as (host, port); the port is the MQTT-over-TLS default when omitted."""
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = port, str(DEFAULT_PORT)
    if not host or not port.isdigit():
        raise ConfigError(f"--broker {text!r}: expected HOST or HOST:PORT, e.g. broker.example.org:{DEFAULT_PORT}")
    return host, int(port)


def link_config(args: argparse.Namespace, **extra: object) -> LinkConfig:
    host, port = parse_broker(str(args.broker))
    try:
        return LinkConfig(host=host, port=port, ca=args.ca, cert=args.cert, key=args.key, **extra)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ConfigError(f"broker option {'.'.join(map(str, first['loc']))}: {first['msg']}") from exc


# Groups whose subcommands come from several modules: their help, written here once.
SHARED_GROUPS = {"hq": "HQ tools: keys, PKI, watchlists, pairing, event ingest"}


class Commands:
    """Top-level subcommands plus named groups (`edge hq …`, `edge watchlist …`) shared across modules."""

    def __init__(self, top: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
        self.top = top
        self._groups: dict[str, argparse._SubParsersAction[argparse.ArgumentParser]] = {}

    def add(self, name: str, help: str) -> argparse.ArgumentParser:
        return self.top.add_parser(name, help=help, description=help)

    def group(self, name: str, help: str | None = None) -> argparse._SubParsersAction[argparse.ArgumentParser]:
        """The group `name`: its help given by the one module that owns it, or by SHARED_GROUPS, never twice."""
        if (help is None) == (name not in SHARED_GROUPS) or (help is not None and name in self._groups):
            raise ValueError(f"command group {name!r}: declare its help once (in one module, or in SHARED_GROUPS)")
        if name not in self._groups:
            text = help or SHARED_GROUPS[name]
            parser = self.top.add_parser(name, help=text, description=text)
            sub = parser.add_subparsers(dest=f"{name}_command", metavar="COMMAND")
            sub.required = True
            self._groups[name] = sub
        return self._groups[name]
