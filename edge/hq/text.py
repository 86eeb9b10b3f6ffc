"""Text that devices and handhelds supplied, made safe for where HQ shows it: a terminal, JSON lines, Markdown.

A place, an officer's name or note, a refusal reason or even an MQTT topic can hold escape sequences (which
would move the cursor, retitle the window or hide lines in `edge hq events`), bidi overrides (which reorder
what the reader sees), or Markdown and HTML (which would forge rows, links or whole sections in the
deployment report). Each is shown as an escape instead, so what was sent stays visible and nothing acts.
"""

import re

# C0 and C1 controls, DEL, and the Unicode bidi controls (marks, embeddings, overrides, isolates)
_CONTROLS = "\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
_CONTROL = re.compile(f"[{_CONTROLS}]")
_STRING_ONLY = re.compile("[\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_JSON_SPACE = re.compile("[\t\n\r]")
_MARKDOWN = re.compile(r"([\\`*_\[\]|~])")  # inline syntax; block syntax needs a line start, which never comes
_HTML = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}


def terminal(text: str) -> str:
    """`text` with every control and bidi character written as a Python escape (`\\x1b`, `\\u202e`)."""
    return _CONTROL.sub(lambda m: ascii(m.group())[1:-1], text)


def json_line(payload: str) -> str:
    """A JSON payload as one safe line: characters that could only be inside its strings become `\\uXXXX`
    (the same JSON value), whitespace between tokens a space. Any other C0 control cannot be in JSON that
    parsed, and is escaped like `terminal` does."""
    escaped = _STRING_ONLY.sub(lambda m: f"\\u{ord(m.group()):04x}", payload)
    return terminal(_JSON_SPACE.sub(" ", escaped))


def markdown(text: str) -> str:
    """`text` as literal Markdown inline text: HTML and Markdown syntax escaped, controls as in `terminal`, on
    one line (a line break could start a heading or a table row)."""
    html = "".join(_HTML.get(c, c) for c in terminal(text))
    return _MARKDOWN.sub(r"\\\1", html)
