"""A reader for udev rules files, strict about the syntax udev(7) documents, and an evaluator of the
subset the camera rules use, to check what names and permissions a device would get.

udevadm verify (systemd >= 254) checks syntax where it exists; this also runs where it does not and
checks meaning: which node gets which /dev/edge name."""

import fnmatch
import re
from dataclasses import dataclass, field
from pathlib import Path

MATCH_ONLY = {"ACTION", "DEVPATH", "KERNEL", "KERNELS", "SUBSYSTEM", "SUBSYSTEMS", "DRIVER", "DRIVERS", "ATTRS",
              "TAGS", "CONST", "TEST", "PROGRAM", "RESULT"}
ASSIGN_ONLY = {"OWNER", "GROUP", "MODE", "SECLABEL", "RUN", "LABEL", "GOTO", "IMPORT", "OPTIONS"}
EITHER = {"NAME", "SYMLINK", "ATTR", "SYSCTL", "ENV", "TAG"}
NEEDS_ATTRIBUTE = {"ATTR", "ATTRS", "ENV", "SYSCTL", "CONST", "IMPORT", "SECLABEL"}
MAY_HAVE_ATTRIBUTE = NEEDS_ATTRIBUTE | {"TEST", "RUN"}
SUBSTITUTIONS = re.compile(r"\$(env|attr|sysctl)\{[^}]+\}|\$(kernel|number|devpath|id|driver|major|minor|result|"
                           r"name|links|root|sys|devnode|tempnode)\b|%[knpbMmcNrSsE]|\$\$|%%")
PAIR = re.compile(r'\s*([A-Z_]+)(?:\{([^}]*)\})?\s*(==|!=|\+=|-=|:=|=)\s*"((?:[^"\\]|\\.)*)"\s*(,|$)')


@dataclass(frozen=True)
class Pair:
    key: str
    attr: str | None
    op: str
    value: str


@dataclass(frozen=True)
class Rule:
    file: str
    line: int
    pairs: tuple[Pair, ...]


def parse(path: Path) -> list[Rule]:
    """Every rule of a file; a syntax error raises ValueError naming the file and line."""
    rules = []
    text = path.read_text().replace("\\\n", "")
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        pairs, pos = [], 0
        while pos < len(line):
            match = PAIR.match(line, pos)
            if match is None:
                raise ValueError(f"{path.name}:{number}: cannot parse at {line[pos:]!r}")
            key, attr, op, value, _ = match.groups()
            pairs.append(_check(Pair(key, attr, op, value), path.name, number))
            pos = match.end()
        rules.append(Rule(path.name, number, tuple(pairs)))
    for index, rule in enumerate(rules):
        for pair in rule.pairs:
            later = [p.value for r in rules[index + 1:] for p in r.pairs if p.key == "LABEL"]
            if pair.key == "GOTO" and pair.value not in later:
                raise ValueError(f"{path.name}:{rule.line}: GOTO {pair.value!r} has no LABEL after it")
    return rules


def _check(pair: Pair, name: str, line: int) -> Pair:
    where = f"{name}:{line}: {pair.key}"
    known = MATCH_ONLY | ASSIGN_ONLY | EITHER
    if pair.key not in known:
        raise ValueError(f"{where}: unknown key")
    if pair.key in NEEDS_ATTRIBUTE and not pair.attr:
        raise ValueError(f"{where}: needs {{attribute}}")
    if pair.attr is not None and pair.key not in MAY_HAVE_ATTRIBUTE:
        raise ValueError(f"{where}: takes no {{attribute}}")
    matching = pair.op in ("==", "!=")
    if matching and pair.key in ASSIGN_ONLY:
        raise ValueError(f"{where}: cannot be matched with {pair.op}")
    if not matching and pair.key in MATCH_ONLY:
        raise ValueError(f"{where}: cannot be assigned with {pair.op}")
    if pair.key == "MODE" and not re.fullmatch(r"0?[0-7]{3,4}", pair.value):
        raise ValueError(f"{where}: {pair.value!r} is not an octal mode")
    if not matching:
        leftover = SUBSTITUTIONS.sub("", pair.value)
        if "$" in leftover or "%" in leftover:
            raise ValueError(f"{where}: unknown substitution in {pair.value!r}")
    return pair


@dataclass
class Device:
    """What udev knows about a device when our rules run (60-persistent-v4l.rules already imported)."""

    kernel: str
    subsystem: str = "video4linux"
    action: str = "add"
    env: dict[str, str] = field(default_factory=dict)
    attrs: dict[str, str] = field(default_factory=dict)
    group: str = "root"
    mode: str = "0600"
    symlinks: list[str] = field(default_factory=list)


def _matches(pattern: str, value: str) -> bool:
    return any(fnmatch.fnmatchcase(value, alternative) for alternative in pattern.split("|"))


def _substitute(value: str, device: Device) -> str:
    value = re.sub(r"\$env\{([^}]+)\}", lambda m: device.env.get(m.group(1), ""), value)
    value = re.sub(r"\$attr\{([^}]+)\}", lambda m: device.attrs.get(m.group(1), ""), value)
    return value.replace("%k", device.kernel).replace("$kernel", device.kernel)


def _value(pair: Pair, device: Device) -> str:
    if pair.key == "ENV":
        return device.env.get(pair.attr or "", "")
    if pair.key == "ATTR":
        return device.attrs.get(pair.attr or "", "")
    return {"ACTION": device.action, "SUBSYSTEM": device.subsystem, "KERNEL": device.kernel}[pair.key]


def apply(rules: list[Rule], device: Device) -> Device:
    """Run rules in order over `device`, as udev would for the keys these files use."""
    index = 0
    while index < len(rules):
        rule = rules[index]
        index += 1
        matches = [p for p in rule.pairs if p.op in ("==", "!=")]
        if not all(_matches(p.value, _value(p, device)) == (p.op == "==") for p in matches):
            continue
        for pair in rule.pairs:
            if pair.key == "GROUP":
                device.group = pair.value
            elif pair.key == "MODE":
                device.mode = pair.value
            elif pair.key == "SYMLINK" and pair.op == "+=":
                device.symlinks.extend(_substitute(pair.value, device).split())
            elif pair.key == "ENV" and pair.op == "=":
                device.env[pair.attr or ""] = _substitute(pair.value, device)
            elif pair.key == "GOTO":
                index = next(i for i, r in enumerate(rules) if i >= index
                             and any(p.key == "LABEL" and p.value == pair.value for p in r.pairs))
    return device
