"""Bird's-eye-view ground truth in base_link: drivable surface, lane markings and vehicles.

The grid is the model's BEV grid (`ModelConfig.bev_*`): rows along x (forward), columns along y
(left), cell centres at range minimum + (i + 0.5) * cell. Recorded as one `nav_msgs/OccupancyGrid`
per class so that training can read the labels a simulated bag carries.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from vla_model.config import ModelConfig
from vla_sim.scene import Pose2D, Scene, footprint

SUBPIXEL_BITS = 4  # fixed-point bits for cv2 polygon coordinates


@dataclass(frozen=True)
class BevGrid:
    """The BEV grid geometry in base_link."""

    x_range: tuple[float, float]
    y_range: tuple[float, float]
    cell_m: float

    @classmethod
    def from_model(cls, config: ModelConfig) -> BevGrid:
        """Return the grid the model predicts its neural map on."""
        return cls(config.bev_x_range, config.bev_y_range, config.bev_cell_m)

    @property
    def shape(self) -> tuple[int, int]:
        """(rows along x, columns along y)."""
        rows = round((self.x_range[1] - self.x_range[0]) / self.cell_m)
        cols = round((self.y_range[1] - self.y_range[0]) / self.cell_m)
        return rows, cols


def grid_cells(points_world: np.ndarray, ego: Pose2D, grid: BevGrid) -> np.ndarray:
    """World points -> fixed-point (col, row) cell coordinates of the grid, for cv2."""
    c, s = np.cos(ego.yaw), np.sin(ego.yaw)
    dx, dy = points_world[:, 0] - ego.x, points_world[:, 1] - ego.y
    x_b, y_b = c * dx + s * dy, -s * dx + c * dy
    col = (y_b - grid.y_range[0]) / grid.cell_m - 0.5
    row = (x_b - grid.x_range[0]) / grid.cell_m - 0.5
    return np.round(np.column_stack([col, row]) * (1 << SUBPIXEL_BITS)).astype(np.int32)


def _near(points: np.ndarray, ego: Pose2D, radius: float) -> bool:
    lo, hi = points.min(axis=0), points.max(axis=0)
    return lo[0] - radius <= ego.x <= hi[0] + radius and lo[1] - radius <= ego.y <= hi[1] + radius


def _radius(grid: BevGrid) -> float:
    """How far from the ego a road element may start and still reach into the grid."""
    return max(abs(v) for v in (*grid.x_range, *grid.y_range)) * 1.5


def surface_mask(polygons: list[np.ndarray], scene: Scene, grid: BevGrid) -> np.ndarray:
    """Return the (rows, cols) bool mask of world polygons around the ego."""
    mask = np.zeros(grid.shape, np.uint8)
    for polygon in polygons:
        if _near(polygon, scene.ego, _radius(grid)):
            cv2.fillPoly(mask, [grid_cells(polygon, scene.ego, grid)], 1, shift=SUBPIXEL_BITS)
    return mask.astype(bool)


def line_mask(polylines: list[np.ndarray], scene: Scene, grid: BevGrid) -> np.ndarray:
    """Return the (rows, cols) bool mask of world polylines around the ego, one cell wide."""
    mask = np.zeros(grid.shape, np.uint8)
    for points in polylines:
        if _near(points, scene.ego, _radius(grid)):
            cells = grid_cells(points, scene.ego, grid)
            cv2.polylines(mask, [cells], False, 1, thickness=1, shift=SUBPIXEL_BITS)
    return mask.astype(bool)


def map_prior(scene: Scene, grid: BevGrid) -> dict[str, np.ndarray]:
    """Return the HD-map layers around the ego (MAP_PRIOR_LAYERS): name -> (rows, cols) mask.

    What a map server would rasterise from a lanelet map, the route the mission planner found on
    it and the localisation: lane centre-lines, the drivable surface, and the surfaces of the
    lanes on the route (roundabouts and junctions: where to leave; a surface, not a line, so the
    way through is as wide as it is; none on a road without one). The model takes them as its
    optional map-prior input (vla_model.config.MAP_PRIOR_LAYERS).
    """
    road = scene.road
    segments = {(step[0], step[1]) for step in scene.route}
    # RoadGeometry lists one surface per lane, in the order of its centre-lines.
    lanes = zip(road.surfaces, road.centres, strict=True)
    route_surfaces = [surface for surface, centre in lanes if centre.lane_id[:2] in segments]
    return {
        'lane_centreline': line_mask([c.points for c in road.centres], scene, grid),
        'drivable': surface_mask(list(road.surfaces), scene, grid),
        'route_lanes': surface_mask(route_surfaces, scene, grid),
    }


def bev_ground_truth(scene: Scene, grid: BevGrid) -> dict[str, np.ndarray]:
    """Return class name -> (rows, cols) bool mask: 'drivable', 'lane_marking', 'vehicle'."""
    rows, cols = grid.shape
    vehicles = np.zeros((rows, cols), np.uint8)
    for actor in scene.actors:
        corners = footprint(actor.pose, actor.length_m, actor.width_m)
        cv2.fillConvexPoly(vehicles, grid_cells(corners, scene.ego, grid), 1, shift=SUBPIXEL_BITS)
    return {
        'drivable': surface_mask(list(scene.road.surfaces), scene, grid),
        'lane_marking': line_mask([m.points for m in scene.road.markings], scene, grid),
        'vehicle': vehicles.astype(bool),
    }
