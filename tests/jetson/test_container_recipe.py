"""deploy/container: the recipe builds from files that exist, takes TensorRT and jetson-utils from NVIDIA
(never PyPI), and installs with the JetPack 6 constraints; the project never depends on PyPI's look-alikes."""

import re
import shlex
import shutil
import subprocess

import pytest
from jetson_support import REPO

from edge.config.tomlio import load_toml

DOCKERFILE = REPO / "deploy" / "container" / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def test_base_is_nvidia_l4t_jetpack_and_every_copy_source_exists() -> None:
    steps = instructions()
    assert steps[0][0] == "ARG" and steps[0][1].startswith("L4T_JETPACK=nvcr.io/nvidia/l4t-jetpack:r36.")
    assert ("FROM", "${L4T_JETPACK}") in steps
    copies = [shlex.split(args) for word, args in steps if word == "COPY"]
    assert copies
    for *sources, _dest in copies:
        for source in sources:
            assert list(REPO.glob(source)), f"COPY {source}: nothing in the repository matches"


def test_nvidia_pieces_never_come_from_pypi() -> None:
    runs = " ".join(args for word, args in instructions() if word == "RUN")
    assert "python3-libnvinfer" in runs and "github.com/dusty-nv/jetson-utils" in runs
    for pip_install in re.findall(r"pip install[^&]*", runs):
        assert not re.search(r"\b(jetson[-_]utils|tensorrt)\b", pip_install), pip_install
    assert "--system-site-packages" in runs and "-c /src/edge/constraints-jetpack6.txt" in runs
    assert (REPO / "deploy/container/constraints-jetpack6.txt").read_text().count("numpy<2") == 1


def test_project_dependencies_exclude_pypi_lookalikes() -> None:
    project = load_toml(REPO / "pyproject.toml")["project"]
    extras = project["optional-dependencies"]
    declared = list(project["dependencies"]) + [d for extra in extras.values() for d in extra]
    assert not {name(d) for d in declared} & {"jetson-utils", "tensorrt", "tensorrt-cu12", "tensorrt-libs"}
    assert "pycuda" in {name(d) for d in extras["jetson"]}


def name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_entrypoint_is_valid_shell_and_runs_the_firmware() -> None:
    entrypoint = REPO / "deploy" / "container" / "entrypoint.sh"
    shell = shutil.which("sh")
    if shell is None:
        pytest.skip("no sh to check the entrypoint with")
    assert subprocess.run([shell, "-n", str(entrypoint)], capture_output=True).returncode == 0
    text = entrypoint.read_text()
    assert 'exec "$edge" "$@"' in text and "engines build --if-missing" in text
    assert ("CMD", '["run", "--config", "/etc/edge/edge.toml"]') in instructions()
    assert ("USER", "edge") in instructions()


def test_container_docs_need_the_nvidia_runtime_at_build_and_map_cameras_to_video_nodes() -> None:
    """`docker build` has no --runtime: CUDA in the build containers needs the default runtime set to nvidia
    (jetson-containers' setup); jetson-utils opens only /dev/video%i, so a udev name is mapped onto one."""
    dockerfile = (REPO / "deploy/container/Dockerfile").read_text()
    docs = (REPO / "docs/jetson.md").read_text()
    route3 = docs[docs.index("## Route 3"):docs.index("## TensorRT engines")]
    assert '"default-runtime": "nvidia"' in dockerfile and '"default-runtime": "nvidia"' in route3
    assert route3.index("\"default-runtime\": \"nvidia\"") < route3.index("docker build -f")
    devices = re.findall(r"--device ([^\s`]+)", route3)
    assert devices and all(re.fullmatch(r"/dev/edge/camera-\d+:/dev/video\d+", d) for d in devices)
