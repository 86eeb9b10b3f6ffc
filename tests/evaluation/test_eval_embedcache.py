"""The evaluation cache: reused across runs, never stale, never trusted when damaged."""

import shutil
from pathlib import Path

import numpy as np

from edge.config.runtime import RuntimeConfig
from edge.evaluation.embedcache import EmbedCache
from edge.vision.stack import VisionStack


def test_cache_is_reused_recomputed_when_the_image_changes_and_survives_damage(data_dir: Path,
                                                                                tmp_path: Path) -> None:
    stack = VisionStack.open(runtime=RuntimeConfig(threads=2))
    a = data_dir / "lfw" / "Aaron_Sorkin" / "Aaron_Sorkin_0001.jpg"
    b = data_dir / "lfw" / "Adam_Scott" / "Adam_Scott_0001.jpg"
    photo, cache_dir = tmp_path / "photo.jpg", tmp_path / "cache"
    shutil.copyfile(a, photo)
    first = EmbedCache(stack, cache_dir, progress=False).embed([photo, b])
    assert first.ok.all() and not first.failed
    assert sorted(p.name.split("-")[0] for p in cache_dir.iterdir()) == ["emb", "faces"]

    again = EmbedCache(stack, cache_dir, progress=False)
    assert len(again._faces) == 2  # loaded from disk, nothing to recompute
    np.testing.assert_array_equal(again.embed([photo]).embeddings[0], first.embeddings[0])

    shutil.copyfile(b, photo)  # same path, another person
    changed = EmbedCache(stack, cache_dir, progress=False).embed([photo])
    assert float(changed.embeddings[0] @ first.embeddings[1]) > 0.999  # now Adam Scott's face
    assert float(changed.embeddings[0] @ first.embeddings[0]) < 0.5

    for f in cache_dir.iterdir():
        f.write_bytes(b"damaged")
    recovered = EmbedCache(stack, cache_dir, progress=False).embed([b])
    assert float(recovered.embeddings[0] @ first.embeddings[1]) > 0.999
