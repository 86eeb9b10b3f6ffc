#!/bin/sh
# Container entry: check the JetPack pieces, build the engines this GPU needs if they are missing (the
# first start on a board takes minutes; they persist in the /var/lib/edge volume), then run edge.
set -eu
edge=/opt/edge/venv/bin/edge
if ! "$edge" engines check --manifest-dir /opt/edge/engines --engine-dir /var/lib/edge/engines; then
    "$edge" engines build --if-missing --manifest-dir /opt/edge/engines --engine-dir /var/lib/edge/engines \
        || echo "entrypoint: engine build failed; edge falls back to ONNX Runtime (see above)" >&2
fi
exec "$edge" "$@"
