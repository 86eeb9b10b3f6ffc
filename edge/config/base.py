"""What every configuration section and every wire payload shares: a strict pydantic base and the identifier rule.

Strict: an unknown key is an error, never silently ignored, so a misspelt setting or an unexpected field in a
message is named instead of dropped. Identifiers (device, handheld, fleet, officer, HQ client) become MQTT topic
levels, certificate CNs and ACL lines, so they are restricted to characters that mean nothing there.
"""

import re

from pydantic import BaseModel, ConfigDict

ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")


class StrictModel(BaseModel):
    """A pydantic model that refuses keys it does not declare."""

    model_config = ConfigDict(extra="forbid")


def check_id(value: str, what: str = "id") -> str:
    """Return `value` if it is a safe identifier (letters, digits, `_.-`, 1-63 chars), else raise ValueError."""
    if not ID_PATTERN.fullmatch(value):
        raise ValueError(
            f"{what} {value!r} is not allowed: use 1-63 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )
    return value
