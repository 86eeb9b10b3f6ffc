#!/bin/sh
# Container entry: check the JetPack pieces, build the engines this GPU needs if they are missing (the
# first start on a board takes minutes; they persist in the /var/lib/edge volume, under the config's
# <device.state_dir>/engines where the daemon loads them), then run edge.
set -eu
edge=/opt/edge/venv/bin/edge
if ! "$edge" engines check --config /etc/edge/edge.toml; then
    "$edge" engines build --if-missing --config /etc/edge/edge.toml \
        || echo "entrypoint: engine build failed; edge falls back to ONNX Runtime (see above)" >&2
fi
exec "$edge" "$@"
