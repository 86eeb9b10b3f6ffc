"""The one error for anything a receiver will not accept: a message, an alert, a decision, a record, a bundle.

`code` is short and stable, for counting and audit records; the message says what was wrong and what to do.
"""

from edge.errors import EdgeError


class Refused(EdgeError):
    """An incoming thing refused, with a machine-readable `code` ("malformed", "bad_signature", …)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
