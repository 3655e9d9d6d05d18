"""Camera geometry for the bird's-eye view: the view-transform look-up table and the ego warp.

The view transform is a gather (as Fast-BEV): every BEV cell, at a few heights, is projected
into every camera once per rig calibration; the network then only gathers feature-map cells by
index and averages them. With `depth_bins` the index also names the cell's depth bin in that
camera, and the network weighs each sample by its pixel's predicted probability of that depth
(Lift-Splat-Shoot's lift without its scatter). Gather exports exactly to ONNX and TensorRT, with
no custom op. (`index_put(accumulate=True)` exports silently wrong when indices repeat, so the
sum over samples is a plain weighted reduction.)
"""

from dataclasses import dataclass

import numpy as np

from vla_model.config import ModelConfig
from vla_perception.rig import RigConfig


@dataclass(frozen=True)
class CameraGeometry:
    """One camera as the model sees it: intrinsics of the model-ready image and its pose."""

    k: np.ndarray  # (3, 3) intrinsics of the image fed to the network (pixels)
    rotation: np.ndarray  # (3, 3) orientation of the optical frame in base_link
    translation: np.ndarray  # (3,) optical-frame origin in base_link, metres


@dataclass(frozen=True)
class ViewLut:
    """Per BEV cell and sample: flat feature index, averaging weight, and the sample's camera."""

    # (cells, samples) int64: the flat feature index into [0, cameras * Hf * Wf] (the last is
    # zeros), times depth_bins plus the cell's depth bin when the model has depth bins
    index: np.ndarray
    weight: np.ndarray  # (cells, samples) float32; a cell's weights sum to 1 (or 0 if unseen)
    cameras: np.ndarray  # (cells, samples) int64: the camera a sample sees from; -1 none


def rotation_from_quaternion(quaternion: tuple[float, float, float, float]) -> np.ndarray:
    """Return the rotation matrix of a unit quaternion (x, y, z, w)."""
    x, y, z, w = np.asarray(quaternion, dtype=np.float64) / np.linalg.norm(quaternion)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def cell_centres(config: ModelConfig) -> np.ndarray:
    """Return (rows, cols, 2) x, y of every BEV cell centre in base_link, metres."""
    rows, cols = config.bev_size
    x = config.bev_x_range[0] + (np.arange(rows) + 0.5) * config.bev_cell_m
    y = config.bev_y_range[0] + (np.arange(cols) + 0.5) * config.bev_cell_m
    return np.stack(np.meshgrid(x, y, indexing='ij'), -1)


def project(points: np.ndarray, camera: CameraGeometry) -> tuple[np.ndarray, np.ndarray]:
    """Project base_link points (n, 3) to pixels (n, 2); also return depth along the optical z."""
    in_camera = (points - camera.translation) @ camera.rotation  # R^T (p - t), row vectors
    depth = in_camera[:, 2]
    with np.errstate(divide='ignore', invalid='ignore'):
        pixels = (in_camera @ camera.k.T)[:, :2] / depth[:, None]
    return pixels, depth


DEPTH_RANGE_M = (1.0, 64.0)
"""Nearest and farthest depth bin edges along a camera's optical axis; the grid's farthest
cell is 54 m from base_link."""


def depth_bin(depth: np.ndarray, bins: int) -> np.ndarray:
    """Return the bin of each optical depth, `bins` spaced evenly in log depth, clipped."""
    near, far = DEPTH_RANGE_M
    position = np.log(np.maximum(depth, near) / near) / np.log(far / near)
    return np.clip(np.floor(position * bins), 0, bins - 1).astype(np.int64)


def build_view_lut(
    config: ModelConfig, cameras: list[CameraGeometry], seeing: np.ndarray | None = None
) -> ViewLut:
    """Compute the look-up table of a rig for this model's image, feature and BEV sizes.

    Samples run camera-major, one per height; with `config.lut_samples` only those that see the
    cell are kept, in that order (a ValueError if a cell is seen by more). A camera whose
    `seeing` entry is False (no usable image or calibration this frame: its geometry is a
    placeholder) sees no cell, so it takes no sample a working camera needs.
    """
    if len(cameras) != config.num_cameras:
        raise ValueError(
            f'the model takes {config.num_cameras} cameras, the rig has {len(cameras)}'
        )
    seeing = np.ones(len(cameras), bool) if seeing is None else np.asarray(seeing, bool)
    feature_h, feature_w = config.feature_size
    stride = config.feature_stride
    centres = cell_centres(config).reshape(-1, 2)
    cells = len(centres)
    # index of the appended zero feature (and its first depth bin, whose probability is zero)
    empty = config.num_cameras * feature_h * feature_w * max(config.depth_bins, 1)
    every = config.num_cameras * len(config.lut_heights_m)
    index = np.full((cells, every), empty, dtype=np.int64)
    camera_of = np.full((cells, every), -1, dtype=np.int64)
    sample = 0
    for camera_index, camera in enumerate(cameras):
        for height in config.lut_heights_m:
            points = np.column_stack([centres, np.full(cells, height)])
            pixels, depth = project(points, camera)
            column = np.floor(pixels[:, 0] / stride)
            row = np.floor(pixels[:, 1] / stride)
            seen = (
                seeing[camera_index]
                & (depth > 0.1)
                & (column >= 0)
                & (column < feature_w)
                & (row >= 0)
                & (row < feature_h)
            )
            flat = (camera_index * feature_h * feature_w + row * feature_w + column).astype(
                np.int64
            )
            if config.depth_bins:
                flat = flat * config.depth_bins + depth_bin(depth, config.depth_bins)
            index[seen, sample] = flat[seen]
            camera_of[seen, sample] = camera_index
            sample += 1
    if config.lut_samples:
        most = int((camera_of >= 0).sum(axis=1).max())
        if most > config.lut_samples:
            raise ValueError(
                f'a BEV cell is seen by {most} camera samples, more than the model lut_samples '
                f'{config.lut_samples}: the rig overlaps more than it was built for'
            )
        order = np.argsort(camera_of < 0, axis=1, kind='stable')[:, : config.lut_samples]
        index = np.take_along_axis(index, order, axis=1)
        camera_of = np.take_along_axis(camera_of, order, axis=1)
    return ViewLut(index, view_weight(camera_of, np.ones(config.num_cameras, bool)), camera_of)


def view_weight(cameras: np.ndarray, camera_valid: np.ndarray) -> np.ndarray:
    """Return averaging weights over the samples that see a cell from a camera with an image.

    `cameras` (cells, samples) is each sample's camera (-1: it sees nothing), a ViewLut's.
    Leaving out a camera that has no image this frame makes it read as unseen rather than as a
    black image.
    """
    valid = np.append(np.asarray(camera_valid, bool), False)  # index -1: no camera
    seen = valid[cameras]
    counts = seen.sum(axis=1, keepdims=True)
    return np.where(seen, 1.0 / np.maximum(counts, 1), 0.0).astype(np.float32)


def warp_grid_base(config: ModelConfig) -> np.ndarray:
    """Return the cell centres (rows, cols, 2) as float32: what the ego warp transforms."""
    return cell_centres(config).astype(np.float32)


def rig_cameras(rig: RigConfig, config: ModelConfig) -> list[CameraGeometry]:
    """Return a rig's cameras from the intrinsics the simulator renders them with.

    The rendered images must be the model's size (the default rig's are): training data of the
    simulator is never resized.
    """
    cameras = []
    for camera in rig.cameras:
        intrinsics = camera.intrinsics
        if intrinsics is None:
            raise ValueError(f'camera {camera.name} of the rig has no intrinsics to render with')
        if (intrinsics.width, intrinsics.height) != (config.image_width, config.image_height):
            raise ValueError(
                f'camera {camera.name} renders {intrinsics.width}x{intrinsics.height}; the '
                f'model takes {config.image_width}x{config.image_height}'
            )
        k = np.array(
            [[intrinsics.fx, 0.0, intrinsics.cx], [0.0, intrinsics.fy, intrinsics.cy], [0, 0, 1]]
        )
        cameras.append(
            CameraGeometry(
                k, rotation_from_quaternion(camera.rotation), np.array(camera.translation)
            )
        )
    return cameras
