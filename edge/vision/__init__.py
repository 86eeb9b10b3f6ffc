"""Pure vision steps: detection decode, alignment, embedding, quality. numpy + OpenCV only."""
