"""JSON on the wire, its one canonical form, and the Ed25519 signature over that form.

Canonical JSON is `json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)`
in UTF-8. Everything signed in this project (payloads, pairing records, alerts, decisions, audit records) signs
those bytes, always of the object without its `signature` key; a verifier canonicalises the dict it *received*,
so it checks exactly what was sent.
"""

import base64
import binascii
import json
from typing import Any, TypeVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, ValidationError

from edge.config.base import StrictModel
from edge.protocol.refused import Refused


def encode(obj: Any) -> bytes:
    """Compact UTF-8 JSON as sent on the wire (keys in the order given)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def canonical(obj: Any) -> bytes:
    """The canonical bytes of `obj`: keys sorted, no whitespace, UTF-8, no NaN."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def parse(payload: bytes | str, what: str) -> Any:
    """JSON from an untrusted sender; every way it can fail is a Refused("malformed") naming `what` it should be."""
    try:
        return json.loads(payload)
    except RecursionError:  # e.g. 200,000 nested brackets from a hostile client
        raise Refused("malformed", f"not {what}: its JSON is nested too deeply") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Refused("malformed", f"not {what}: not UTF-8 JSON: {exc}") from None
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        raise Refused("malformed", f"not {what}: {exc}") from None


M = TypeVar("M", bound=BaseModel)


class WireModel(StrictModel):
    """Base of every wire format: strict, immutable once made, no NaN or infinity."""

    model_config = ConfigDict(populate_by_name=True, frozen=True, allow_inf_nan=False)

    def body(self) -> dict[str, Any]:
        """The JSON-ready dict as sent on the wire (aliases applied: `schema`, not `schema_`)."""
        return self.model_dump(mode="json", by_alias=True)


def load_model(payload: bytes | str, model: type[M], what: str) -> tuple[dict[str, Any], M]:
    """Parse and validate an untrusted payload as `model`: the raw dict (for signature checks) and the model.

    Anything that is not a valid `model` is a Refused("malformed") saying `what` was expected and why not.
    """
    raw = parse(payload, what)
    if not isinstance(raw, dict):
        raise Refused("malformed", f"not {what}: JSON {type(raw).__name__}, expected an object")
    return raw, validate(raw, model, what)


def validate(raw: dict[str, Any], model: type[M], what: str) -> M:
    """`raw` as `model`, or Refused("malformed") naming the first problems."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise Refused("malformed", f"not {what}: {problems(exc)}") from None
    except (RecursionError, ValueError) as exc:
        raise Refused("malformed", f"not {what}: {exc}") from None


def problems(exc: ValidationError, most: int = 5) -> str:
    """The first validation errors as `field.path: message`, for a one-line refusal. The path is the sender's
    (an unexpected key) and a message may quote its value: what is not printable (escape sequences, bidi
    overrides) is shown escaped, so the refusal is safe in every log and terminal it reaches."""
    return "; ".join(f"{'.'.join(map(_shown, e['loc'])) or '<root>'}: {_shown(e['msg'])}"
                     for e in exc.errors()[:most])


def _shown(part: object) -> str:
    text = str(part)
    return text if text.isprintable() else ascii(text)[1:-1]


def _unsigned(body: dict[str, Any]) -> bytes:
    return canonical({k: v for k, v in body.items() if k != "signature"})


def sign(body: dict[str, Any], key: Ed25519PrivateKey) -> dict[str, Any]:
    """Return `body` with `signature` = base64(Ed25519(canonical(body without signature)))."""
    return {**body, "signature": base64.b64encode(key.sign(_unsigned(body))).decode("ascii")}


def verify(body: dict[str, Any], key: Ed25519PublicKey) -> bool:
    """True when `body["signature"]` is `key`'s Ed25519 signature over the canonical body without it."""
    signature = body.get("signature")
    if not isinstance(signature, str):
        return False
    try:
        key.verify(base64.b64decode(signature, validate=True), _unsigned(body))
    except (InvalidSignature, binascii.Error, ValueError):
        return False
    return True
