"""Helpers of scripts/rebuild-onnx (a maintainer tool, not part of the `edge` package).

`prelu`, `sface` and the `tool_*` modules run inside the conversion venvs and import only what those venvs have;
the rest runs in the project's environment.
"""
