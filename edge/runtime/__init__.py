"""Inference backends behind one interface: `Runtime.run(dict of named arrays) -> dict`."""

from edge.runtime.base import Runtime
from edge.runtime.select import open_runtime

__all__ = ["Runtime", "open_runtime"]
