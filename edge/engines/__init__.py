"""The `edge engines` command and the JetPack checks: a thin layer over edge.runtime.

edge.runtime owns TensorRT end to end (engine file and header, profiles, sample inputs, build,
comparison with ONNX Runtime); here are only the JetPack checks (check.py, jetpack.py), the aligned
faces an embedder is calibrated and checked on (faces.py: vision's work, which edge.runtime may not
import), and the command that drives the runtime (cli.py). Everything here imports without TensorRT:
edge.runtime imports tensorrt and pycuda lazily and names what is missing.
"""
