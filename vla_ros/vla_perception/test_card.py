"""A synthetic camera image for benchmarks and fault injection (no ROS)."""

import numpy as np


def test_card(seed: int, width: int, height: int) -> np.ndarray:
    """Return an (H, W, 3) uint8 image with gradients and blocks, so JPEG sizes are realistic."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    card = np.stack([x * 255 // width, y * 255 // height, (x + y) * 127 // (width + height)], -1)
    block = max(8, min(width, height) // 7)
    for _ in range(40):
        x0, y0 = rng.integers(0, width - block), rng.integers(0, height - block)
        card[y0 : y0 + block, x0 : x0 + block] = rng.integers(0, 256, 3)
    return card.astype(np.uint8)
