"""Camera sensor faults for the scenario library: a camera goes black, freezes or turns to noise.

Faults act on rendered images, after the renderer, as a real broken camera would: the image still
arrives on time, its content is wrong. The scenario says which camera has which fault when; the
injector turns each image into what that camera delivers. Noise comes from one generator per
camera seeded by the injector's seed and the camera's name, so an episode replays to the same
pixels.
"""

from __future__ import annotations

import zlib
from enum import Enum

import numpy as np

NOISE_SIGMA = 60.0
"""Standard deviation of the Gaussian noise of a NOISE fault, in 8-bit grey levels."""
NOISE_SALT = 0.05
"""Share of the pixels of a NOISE fault stuck black or white (salt and pepper)."""


class CameraFault(Enum):
    """How a faulty camera's images look."""

    BLACKOUT = 'blackout'  # all zeros: lens covered, sensor dead, link delivers blank frames
    FROZEN = 'frozen'  # the last good image, repeated: a stuck driver or pipeline
    NOISE = 'noise'  # heavy Gaussian and salt-and-pepper noise: a failing sensor or cable


class CameraFaultInjector:
    """Turns a camera's rendered image into the faulty one; stateful, deterministic for a seed.

    It keeps each camera's last good image (FROZEN repeats it; black before the first one) and
    each camera's noise generator.
    """

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed
        self._last_good: dict[str, np.ndarray] = {}
        self._rngs: dict[str, np.random.Generator] = {}

    def apply(self, camera: str, image: np.ndarray, fault: CameraFault | None) -> np.ndarray:
        """Return what `camera` delivers for a rendered image under `fault` (None: the image)."""
        if fault is None:
            self._last_good[camera] = image.copy()  # the caller may reuse its array
            return image
        if fault is CameraFault.BLACKOUT:
            return np.zeros_like(image)
        if fault is CameraFault.FROZEN:
            return self._last_good.get(camera, np.zeros_like(image)).copy()
        return self._noise(camera, image)

    def _noise(self, camera: str, image: np.ndarray) -> np.ndarray:
        """Return the image drowned in Gaussian noise, with salt and pepper."""
        rng = self._rngs.get(camera)
        if rng is None:
            rng = self._rngs[camera] = np.random.default_rng(
                [self.seed, zlib.crc32(camera.encode())]
            )
        noisy = image + rng.normal(0.0, NOISE_SIGMA, image.shape)
        salt = rng.random(image.shape[:2]) < NOISE_SALT
        noisy[salt] = 255.0 * rng.integers(0, 2, (int(salt.sum()), 1))
        return np.clip(noisy, 0.0, 255.0).astype(np.uint8)
