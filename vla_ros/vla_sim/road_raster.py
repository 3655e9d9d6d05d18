"""A top-down RGB raster of the road around the ego, for the camera renderer to sample.

The raster is a small mip chain: the same ground painted at 5, 10, 20, 40 and 80 cm per pixel,
each level only as wide as the ground that cameras see at that footprint. A pixel of a camera
samples the level whose cell matches its footprint on the ground, so lane lines 100 m away turn
into a faint grey line instead of flickering dots (the anti-aliasing a GPU gets from mipmaps).

Each level is toroidal: world pixel (row I, col J) is stored at (I mod N, J mod N). The window
follows the ego in steps of RECENTRE_PX pixels, and only the strip of ground that enters it is
painted: no frame redraws a whole window, so the cost per frame stays flat (about proportional to
the distance driven); cv2.remap's BORDER_WRAP interpolates across the seam.

World pixel indices: col J covers x in [J c, (J + 1) c), row I covers -y in [I c, (I + 1) c)
(north-up as a map), with c the cell size; pixel centres are at integer (col, row), as in OpenCV.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from vla_sim.scene import (
    DASH_LENGTH_M,
    DASH_PERIOD_M,
    MARKING_WIDTH_M,
    MarkingStyle,
    Pose2D,
    RoadGeometry,
)

LEVEL_CELLS_M = (0.05, 0.1, 0.2, 0.4, 0.8)
"""Cell size of each mip level, m; a level's cell is twice the previous one's."""
RECENTRE_PX = 64
"""A level's window follows the ego once it is this many pixels off-centre along an axis."""
SHOULDER_M = 0.8
"""Width of the gravel shoulder painted around the asphalt (highway-env has none; it shows where
the asphalt ends, as on a real road)."""
SEGMENT_M = 10.0
"""Painted lines are cut into straight segments no longer than this (see _painted_segments)."""
TEXTURE_PERIOD_M = 25.6
"""The grass and asphalt textures repeat every this many metres, at every level alike."""

GRASS_RGB = np.array([84.0, 108.0, 56.0])
GRAVEL_RGB = (128, 121, 106)
ASPHALT_RGB = np.array([80.0, 81.0, 85.0])
PAINT_RGB = np.array([228.0, 228.0, 218.0])
_SHIFT = 4  # cv2 drawing fixed-point bits: coordinates are in 1/16 pixel
_ONE = 1 << _SHIFT


def mip_level(footprint_m: np.ndarray) -> np.ndarray:
    """Return, per ground footprint (m per camera pixel), the finest level not finer than it.

    A cell at least as large as the footprint never aliases; it is at most twice as blurry.
    """
    ratio = np.maximum(np.asarray(footprint_m, dtype=np.float64), 1e-9) / LEVEL_CELLS_M[0]
    return np.clip(np.ceil(np.log2(ratio) - 1e-9), 0, len(LEVEL_CELLS_M) - 1).astype(np.int64)


def _periodic_noise(size: int, feature_px: float, rng: np.random.Generator) -> np.ndarray:
    """Return tileable smooth noise of unit standard deviation (white noise low-passed by FFT)."""
    spectrum = np.fft.fft2(rng.standard_normal((size, size)))
    frequency = np.hypot(*np.meshgrid(np.fft.fftfreq(size), np.fft.fftfreq(size)))
    noise = np.real(np.fft.ifft2(spectrum * np.exp(-((frequency * feature_px) ** 2))))
    return noise / noise.std()


def _textures() -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Return the grass and asphalt texture tiles of every level, finest first (seeded, fixed).

    Coarser tiles are area-averages of the finest, so the levels agree where they meet.
    """
    size = round(TEXTURE_PERIOD_M / LEVEL_CELLS_M[0])
    rng = np.random.default_rng(0)
    patches, grain = _periodic_noise(size, 60.0, rng), _periodic_noise(size, 1.5, rng)
    grass = GRASS_RGB + (14.0 * patches + 7.0 * grain)[..., None] * np.array([0.8, 1.0, 0.6])
    asphalt = ASPHALT_RGB + (3.0 * patches + 5.0 * grain)[..., None]
    grass_tiles, asphalt_tiles = [], []
    for cell in LEVEL_CELLS_M:
        tile_px = round(TEXTURE_PERIOD_M / cell)
        for finest, tiles in ((grass, grass_tiles), (asphalt, asphalt_tiles)):
            tile = cv2.resize(
                finest.astype(np.float32), (tile_px, tile_px), interpolation=cv2.INTER_AREA
            )
            tiles.append(np.clip(np.rint(tile), 0, 255).astype(np.uint8))
    return grass_tiles, asphalt_tiles


def _torus_pieces(start: int, stop: int, size: int) -> list[tuple[int, int, int]]:
    """Split world indices [start, stop) into (world start, stored start, length) runs mod size."""
    pieces = []
    while start < stop:
        stored = start % size
        length = min(stop - start, size - stored)
        pieces.append((start, stored, length))
        start += length
    return pieces


def _painted_segments(points: np.ndarray, style: MarkingStyle) -> np.ndarray:
    """Return the painted parts of a line as straight segments (k, 2, 2), none over SEGMENT_M.

    A dashed line is painted on arc lengths [k DASH_PERIOD_M, k DASH_PERIOD_M + DASH_LENGTH_M]
    (scene.py). Short segments let a strip of raster find its paint by a sorted search.
    """
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(points, axis=0), axis=1))])
    length = arc[-1]
    cuts = [arc, np.arange(0.0, length, SEGMENT_M)]
    if style is MarkingStyle.DASHED:
        starts = np.arange(0.0, length, DASH_PERIOD_M)
        cuts += [starts, np.minimum(starts + DASH_LENGTH_M, length)]
    cuts = np.unique(np.concatenate(cuts))
    lo, hi = cuts[:-1], cuts[1:]
    keep = hi - lo > 1e-9
    if style is MarkingStyle.DASHED:
        keep &= np.mod(0.5 * (lo + hi), DASH_PERIOD_M) < DASH_LENGTH_M
    ends = np.column_stack([lo[keep], hi[keep]])
    return np.stack([np.interp(ends, arc, points[:, 0]), np.interp(ends, arc, points[:, 1])], -1)


def _world_pixels(points: np.ndarray, cell: float) -> np.ndarray:
    """Return world points (..., 2) as int64 1/16-pixel (col, row) world pixel coordinates."""
    pixels = np.stack([points[..., 0] / cell, -points[..., 1] / cell], -1) - 0.5
    return np.rint(pixels * _ONE).astype(np.int64)


class _Level:
    """One toroidal mip level: an N x N RGB image of the ground around a moving centre."""

    def __init__(self, index: int, radius_m: float) -> None:
        self.index = index
        self.cell = LEVEL_CELLS_M[index]
        reach = math.ceil(radius_m / self.cell) + 2  # pixels either side, with bilinear taps
        self.size = 2 * (reach + RECENTRE_PX)
        self.image = np.zeros((self.size, self.size, 3), dtype=np.uint8)
        self.origin: tuple[int, int] | None = None  # world (row, col) of the window's first pixel

    def recentred(self, row: int, col: int) -> tuple[int, int]:
        """Return the window origin for the ego at world pixel (row, col).

        The window moves along an axis once the ego is more than RECENTRE_PX off-centre on it.
        """
        wanted = (row - self.size // 2, col - self.size // 2)
        if self.origin is None:
            return wanted
        return (
            wanted[0] if abs(wanted[0] - self.origin[0]) > RECENTRE_PX else self.origin[0],
            wanted[1] if abs(wanted[1] - self.origin[1]) > RECENTRE_PX else self.origin[1],
        )


class RoadRaster:
    """The road of one episode as a mip chain of top-down RGB rasters around the ego.

    `radii_m[k]` is how far from the ego level k must show the ground (0: the level is unused);
    the renderer derives it from the footprints of its cameras' pixels.
    """

    def __init__(self, road: RoadGeometry, radii_m: Sequence[float]) -> None:
        if len(radii_m) > len(LEVEL_CELLS_M):
            raise ValueError(f'at most {len(LEVEL_CELLS_M)} levels, got {len(radii_m)} radii')
        self.road = road
        self.levels = {k: _Level(k, r) for k, r in enumerate(radii_m) if r > 0.0}
        self._grass, self._asphalt = _textures()
        self._surface_boxes = np.array(
            [[*p.min(axis=0), *p.max(axis=0)] for p in road.surfaces]
        ).reshape(-1, 4)
        segments = [_painted_segments(m.points, m.style) for m in road.markings]
        segments = np.concatenate(segments) if segments else np.zeros((0, 2, 2))
        segments = segments[np.argsort(segments[..., 0].min(axis=1), kind='stable')]
        self._segment_x0 = segments[..., 0].min(axis=1)  # sorted
        self._segment_y = np.sort(segments[..., 1], axis=1)  # (min, max)
        # Fixed-point pixel coordinates per level, so a repaint only subtracts its corner.
        self._surface_px = {
            k: [_world_pixels(p, level.cell) for p in road.surfaces]
            for k, level in self.levels.items()
        }
        self._segment_px = {k: _world_pixels(segments, lv.cell) for k, lv in self.levels.items()}

    def update(self, x: float, y: float) -> None:
        """Move every level's window so it covers its radius around (x, y); paint what enters."""
        for level in self.levels.values():
            origin = level.recentred(math.floor(-y / level.cell), math.floor(x / level.cell))
            if origin == level.origin:
                continue
            old, n = level.origin, level.size
            level.origin = origin
            r0, c0 = origin
            if old is None or abs(r0 - old[0]) >= n or abs(c0 - old[1]) >= n:
                self._paint(level, r0, r0 + n, c0, c0 + n)
                continue
            # Rows that entered (full width), then columns that entered (rows kept from before).
            entered_rows = (old[0] + n, r0 + n) if r0 > old[0] else (r0, old[0])
            self._paint(level, *entered_rows, c0, c0 + n)
            kept_rows = (max(r0, old[0]), min(r0, old[0]) + n)
            entered_cols = (old[1] + n, c0 + n) if c0 > old[1] else (c0, old[1])
            self._paint(level, *kept_rows, *entered_cols)

    def sample(
        self, level_index: int, ground_xy: np.ndarray, ego: Pose2D, out: np.ndarray
    ) -> None:
        """Write into out the raster colour under base_link ground points (h, w, 2) float32.

        The ego pose is folded into one affine map, so a frame costs one cv2.transform and one
        cv2.remap (bilinear) per band of camera rows.
        """
        level = self.levels[level_index]
        n, scale = level.size, 1.0 / level.cell
        off_row, off_col = (o - o % n for o in level.origin)  # multiples of n: same torus cells
        c, s = math.cos(ego.yaw), math.sin(ego.yaw)
        affine = np.array(
            [
                [c * scale, -s * scale, ego.x * scale - 0.5 - off_col],
                [-s * scale, -c * scale, -ego.y * scale - 0.5 - off_row],
            ]
        )
        pixels = cv2.transform(ground_xy, affine)
        # Fold [-0.5, 2n - 0.5) into [-0.5, n - 0.5]: remap is fast only for in-range pixels
        # (cv2 passes; a numpy `where` is ten times slower).
        _, wrapped = cv2.threshold(pixels, n - 0.5, n, cv2.THRESH_BINARY)
        cv2.subtract(pixels, wrapped, dst=pixels)
        cv2.remap(level.image, pixels, None, cv2.INTER_LINEAR, dst=out, borderMode=cv2.BORDER_WRAP)

    def _paint(self, level: _Level, row0: int, row1: int, col0: int, col1: int) -> None:
        """Paint world pixels [row0, row1) x [col0, col1) of a level, split at the torus seams."""
        if row1 <= row0 or col1 <= col0:
            return
        strip = np.empty((row1 - row0, col1 - col0, 3), dtype=np.uint8)
        self._paint_strip(level, strip, row0, col0)
        for world_row, stored_row, rows in _torus_pieces(row0, row1, level.size):
            for world_col, stored_col, cols in _torus_pieces(col0, col1, level.size):
                level.image[stored_row : stored_row + rows, stored_col : stored_col + cols] = (
                    strip[
                        world_row - row0 : world_row - row0 + rows,
                        world_col - col0 : world_col - col0 + cols,
                    ]
                )

    def _paint_strip(self, level: _Level, canvas: np.ndarray, row0: int, col0: int) -> None:
        """Paint grass, shoulders, asphalt and lines on canvas; its first pixel is (row0, col0)."""
        rows, cols = canvas.shape[:2]
        cell = level.cell
        _fill_tiled(canvas, self._grass[level.index], row0, col0)
        x0, x1 = col0 * cell, (col0 + cols) * cell
        y0, y1 = -(row0 + rows) * cell, -row0 * cell
        corner = np.array([col0, row0]) * _ONE
        boxes, margin = self._surface_boxes, SHOULDER_M + cell
        near = np.flatnonzero(
            (boxes[:, 0] <= x1 + margin)
            & (boxes[:, 2] >= x0 - margin)
            & (boxes[:, 1] <= y1 + margin)
            & (boxes[:, 3] >= y0 - margin)
        )
        if near.size:
            polygons = [(self._surface_px[level.index][i] - corner).astype(np.int32) for i in near]
            shoulder_px = max(1, round(2.0 * SHOULDER_M / cell))
            cv2.polylines(canvas, polygons, True, GRAVEL_RGB, shoulder_px, cv2.LINE_8, _SHIFT)
            mask = np.zeros((rows, cols), dtype=np.uint8)
            cv2.fillPoly(mask, polygons, 1, cv2.LINE_8, _SHIFT)
            asphalt = np.empty_like(canvas)
            _fill_tiled(asphalt, self._asphalt[level.index], row0, col0)
            cv2.copyTo(asphalt, mask, canvas)
        # Segments are sorted by their smallest x and no longer than SEGMENT_M: one slice holds
        # every segment that can reach into [x0, x1]; then keep those that reach into [y0, y1].
        first, last = np.searchsorted(self._segment_x0, [x0 - SEGMENT_M - cell, x1 + cell])
        y = self._segment_y[first:last]
        hit = first + np.flatnonzero((y[:, 0] <= y1 + cell) & (y[:, 1] >= y0 - cell))
        if hit.size:
            # Lines thinner than a cell are drawn one pixel wide, the paint diluted by coverage.
            width_px = max(1, round(MARKING_WIDTH_M / cell))
            coverage = min(1.0, MARKING_WIDTH_M / (cell * width_px))
            paint = ASPHALT_RGB + coverage * (PAINT_RGB - ASPHALT_RGB)
            segments = (self._segment_px[level.index][hit] - corner).astype(np.int32)
            cv2.polylines(canvas, segments, False, paint.tolist(), width_px, cv2.LINE_AA, _SHIFT)


def _fill_tiled(out: np.ndarray, tile: np.ndarray, row0: int, col0: int) -> None:
    """Fill out with an endlessly repeated square tile; out's first pixel is (row0, col0)."""
    size = tile.shape[0]
    rows, cols = out.shape[:2]
    row = 0
    while row < rows:
        tile_row = (row0 + row) % size
        height = min(size - tile_row, rows - row)
        col = 0
        while col < cols:
            tile_col = (col0 + col) % size
            width = min(size - tile_col, cols - col)
            out[row : row + height, col : col + width] = tile[
                tile_row : tile_row + height, tile_col : tile_col + width
            ]
            col += width
        row += height
