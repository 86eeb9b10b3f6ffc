"""TensorRT engines on the device: naming and metadata, build profiles, JetPack checks, and the CLI.

Everything here imports without TensorRT; the pieces that need it (edge.runtime.tensorrt,
edge.runtime.build) import it lazily and name what is missing.
"""
