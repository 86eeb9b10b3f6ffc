"""The board runs Python 3.10 (JetPack 6): every `edge` command must import there.

tomllib is 3.11+; on 3.10 the `tomli` backport stands in (edge.config.tomlio). `edge run` builds the whole
command parser, so one module importing tomllib directly stops the daemon from starting on a Jetson.
"""

import ast
import subprocess
import sys
from pathlib import Path

EDGE = Path(__file__).resolve().parents[2] / "edge"
TOMLIO = EDGE / "config" / "tomlio.py"

# Stdlib modules a Python 3.10 does not have.
NOT_IN_310 = {"tomllib", "wsgiref.types"}


def test_no_module_imports_a_stdlib_module_python_310_lacks():
    found = []
    for path in sorted(EDGE.rglob("*.py")):
        if path == TOMLIO:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
            found += [f"{path.relative_to(EDGE.parent)}:{node.lineno} {n}" for n in names if n in NOT_IN_310]
    assert not found, f"3.11+ stdlib imports (use edge.config.tomlio): {found}"


def test_the_command_parser_builds_as_on_python_310():
    """As on the board: no tomllib, tomli installed (the `tomli; python_version < '3.11'` dependency)."""
    script = (
        "import sys, tomllib\n"
        "sys.modules['tomli'] = tomllib\n"
        "sys.modules['tomllib'] = None\n"
        "sys.version_info = (3, 10, 12, 'final', 0)\n"
        "from edge.cli import build_parser\n"
        "build_parser()\n"
        "print('built')\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          cwd=EDGE.parent)
    assert done.returncode == 0 and "built" in done.stdout, done.stderr[-2000:]
