"""`edge hq pki issue --role hq` registers what an HQ client does, and the ACL grants it that alone."""

import json
from pathlib import Path

import pytest

from edge.cli import main
from edge.hq.acl import HQ_RIGHTS, Registry, render_acl


def block(acl: str, user: str) -> list[str]:
    """The topic lines of one `user` block."""
    lines = acl.splitlines()
    start = lines.index(f"user {user}") + 1
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("topic ")), len(lines))
    return lines[start:end]


def test_issue_records_hq_roles_and_the_acl_follows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ca, certs, registry = tmp_path / "ca", tmp_path / "certs", tmp_path / "registry.json"
    assert main(["hq", "pki", "init", "--out", str(ca)]) == 0

    def issue(ident: str, *roles: str) -> int:
        extra = [a for role in roles for a in ("--hq-role", role)]
        return main(["hq", "pki", "issue", "--role", "hq", "--id", ident, *extra, "--ca-dir", str(ca), "--out",
                     str(certs), "--registry", str(registry)])

    assert issue("ops") != 0  # its id names no role, and none given: refused before a certificate is made
    assert "--hq-role" in capsys.readouterr().err and not (certs / "hq-ops.crt").exists()
    assert issue("ops", "pairing", "publisher") == 0
    assert issue("ingest2") == 0  # the role its id starts with
    acl = (tmp_path / "acl").read_text()
    assert sorted(block(acl, "hq-ops")) == sorted([*HQ_RIGHTS["pairing"], *HQ_RIGHTS["publisher"]])
    assert block(acl, "hq-ingest2") == list(HQ_RIGHTS["ingest"])
    assert json.loads(registry.read_text())["hq_roles"] == {"ops": ["pairing", "publisher"], "ingest2": ["ingest"]}


def test_registry_from_before_roles_keeps_conventional_names_and_gives_others_nothing() -> None:
    registry = Registry.model_validate({"hq": ["publisher", "ingest", "ops"]})
    acl = render_acl(registry)
    assert block(acl, "hq-publisher") == sorted(HQ_RIGHTS["publisher"])
    assert block(acl, "hq-ingest") == list(HQ_RIGHTS["ingest"])
    assert block(acl, "hq-ops") == []
