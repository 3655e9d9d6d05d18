"""Depth targets for the lift's depth bins, drawn from the privileged BEV raster.

The depth-weighted lift (network.lift) learns where along its ray each pixel's content lies.
From the map's loss alone it learns that slowly: the first student run with it drew no vehicle in
400 steps, as BEVDepth (Li et al., AAAI 2023) found for Lift-Splat-Shoot's implicit depth, which
it supervises directly. The simulator's world is flat and its vehicles are boxes standing on
their footprints, so a feature pixel's depth is found by marching its ray through the raster:
the first depth bin in which the ray is inside a vehicle's box, or the bin where it meets the
ground. Sky, and rays that leave the grid before either, get no target.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from vla_model.bev_geometry import DEPTH_RANGE_M, CameraGeometry, depth_bin
from vla_model.config import ModelConfig

VEHICLE_BOX_HEIGHT_M = 1.5
"""Height of the box a vehicle cell stands for: a car's (vla_sim.world.ACTOR_HEIGHTS_M; a truck's
3.6 m top is taken for what is behind it, a label error above 1.5 m only)."""
SAMPLES_PER_BIN = 4
"""Points tested per depth bin: a bin is 30 % deep, 12 m at 40 m, longer than a car."""


@dataclass(frozen=True)
class DepthRays:
    """Each feature pixel's ray, sampled in its depth bins (pixels camera-major, row, column)."""

    cell: np.ndarray  # (pixels, bins, samples) int64: the flat BEV cell of each point, -1 outside
    in_box_height: np.ndarray  # (pixels, bins, samples) bool: 0 <= z <= VEHICLE_BOX_HEIGHT_M
    ground_bin: np.ndarray  # (pixels,) int64: the bin where the ray meets the grid's ground; -1


def depth_rays(config: ModelConfig, cameras: list[CameraGeometry]) -> DepthRays:
    """Sample every feature pixel's ray of a rig (the lift's geometry) in the model's bins."""
    bins, stride = config.depth_bins, config.feature_stride
    feature_h, feature_w = config.feature_size
    rows, cols = config.bev_size
    near, far = DEPTH_RANGE_M
    fractions = np.arange(bins)[:, None] + (np.arange(SAMPLES_PER_BIN) + 0.5) / SAMPLES_PER_BIN
    depths = near * (far / near) ** (fractions / bins)  # (bins, samples) along the optical axis
    v, u = np.meshgrid(
        (np.arange(feature_h) + 0.5) * stride, (np.arange(feature_w) + 0.5) * stride, indexing='ij'
    )
    pixels = np.stack([u.ravel(), v.ravel(), np.ones(u.size)], -1)  # (Hf * Wf, 3)
    cells, heights, ground = [], [], []
    for camera in cameras:
        rays = pixels @ np.linalg.inv(camera.k).T @ camera.rotation.T  # base_link, optical z = 1
        points = camera.translation + rays[:, None, None, :] * depths[None, :, :, None]
        cells.append(_flat_cell(points[..., :2], config, rows, cols))
        heights.append((points[..., 2] >= 0.0) & (points[..., 2] <= VEHICLE_BOX_HEIGHT_M))
        with np.errstate(divide='ignore', invalid='ignore'):
            reach = np.where(rays[:, 2] < 0.0, -camera.translation[2] / rays[:, 2], np.inf)
        meets = camera.translation + rays * np.where(np.isfinite(reach), reach, 0.0)[:, None]
        inside = np.isfinite(reach) & (_flat_cell(meets[:, :2], config, rows, cols) >= 0)
        ground.append(np.where(inside, depth_bin(np.where(inside, reach, near), bins), -1))
    return DepthRays(np.concatenate(cells), np.concatenate(heights), np.concatenate(ground))


def _flat_cell(xy: np.ndarray, config: ModelConfig, rows: int, cols: int) -> np.ndarray:
    """Return the flat cell (row * cols + col) of base_link points, -1 outside the grid."""
    row = np.floor((xy[..., 0] - config.bev_x_range[0]) / config.bev_cell_m)
    col = np.floor((xy[..., 1] - config.bev_y_range[0]) / config.bev_cell_m)
    inside = (row >= 0) & (row < rows) & (col >= 0) & (col < cols)
    return np.where(inside, row * cols + col, -1).astype(np.int64)


def depth_targets(rays: DepthRays, vehicle: Tensor) -> tuple[Tensor, Tensor]:
    """Return each pixel's first-hit depth bin under `vehicle` (-1 none), and whether it is a car.

    vehicle (B, rows, cols): the raster's vehicle layer of the frame the images show. Both
    results are (B, pixels): int64 bins, and bool, true where the first hit is a vehicle's box.
    """
    bins = rays.cell.shape[1]
    cell = torch.from_numpy(rays.cell)
    occupied = vehicle.flatten(1)[:, cell.clamp(min=0)] > 0.5  # (B, pixels, bins, samples)
    hit = (occupied & (cell >= 0) & torch.from_numpy(rays.in_box_height)).any(-1)
    first_vehicle = torch.where(hit.any(-1), hit.to(torch.int8).argmax(-1), bins)
    ground = torch.from_numpy(rays.ground_bin)
    first_ground = torch.where(ground >= 0, ground, bins).expand_as(first_vehicle)
    first = torch.minimum(first_vehicle, first_ground)
    return torch.where(first < bins, first, -1), first_vehicle < first_ground
