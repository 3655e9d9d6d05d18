"""The privileged teacher's input: the simulator's ground truth drawn on the model's BEV grid.

What a perfect perception stack and an HD map would give (Learning by Cheating's privileged
agent, Roach's BEV input), in base_link on the neural map's grid, so the teacher's plans and the
student's share a frame: road surface, painted lines, lane centre-lines, every vehicle's box and
its velocity, the surfaces of the lanes on the route the world was built with (roundabouts and
junctions: where to leave; a surface, not a line, so the way through is as wide as it is), and
exit lanes (a fact of the map; whether to take one is the instruction's to say). Nothing here
depends on the instruction, so the teacher must read the words to know what to do.
"""

from __future__ import annotations

import cv2
import numpy as np

from vla_model.config import PRIVILEGED_CHANNELS, VELOCITY_SCALE_MPS
from vla_sim.bev_ground_truth import (
    SUBPIXEL_BITS,
    BevGrid,
    grid_cells,
    surface_mask,
)
from vla_sim.scene import Scene, footprint

EXIT_NODE = 'exit'
"""highway-env's name for the end node of an exit ramp's lanes (exit-v0)."""


def _velocity_layers(scene: Scene, grid: BevGrid) -> np.ndarray:
    """(2, rows, cols) each actor's velocity in base_link over its footprint, scaled."""
    layers = np.zeros((2, *grid.shape), np.float32)
    ego_yaw = scene.ego.yaw
    for actor in scene.actors:
        relative = actor.pose.yaw - ego_yaw
        velocity = actor.speed_mps * np.array([np.cos(relative), np.sin(relative)])
        cells = grid_cells(footprint(actor.pose, actor.length_m, actor.width_m), scene.ego, grid)
        for layer, value in zip(layers, velocity / VELOCITY_SCALE_MPS, strict=True):
            cv2.fillConvexPoly(layer, cells, float(value), shift=SUBPIXEL_BITS)
    return layers


def privileged_raster(
    scene: Scene, grid: BevGrid, bev: dict[str, np.ndarray], map_layers: dict[str, np.ndarray]
) -> np.ndarray:
    """Return the (len(PRIVILEGED_CHANNELS), rows, cols) float32 teacher input of one instant.

    `bev` and `map_layers` are the frame's BEV ground truth and map prior (already drawn by the
    simulator for the same scene and grid, so they are not drawn twice).
    """
    exit_surfaces = [
        surface
        for surface, centre in zip(scene.road.surfaces, scene.road.centres, strict=True)
        if centre.lane_id[1] == EXIT_NODE
    ]
    vx, vy = _velocity_layers(scene, grid)
    layers = {
        'drivable': bev['drivable'],
        'lane_marking': bev['lane_marking'],
        'lane_centreline': map_layers['lane_centreline'],
        'vehicle': bev['vehicle'],
        'vehicle_vx': vx,
        'vehicle_vy': vy,
        'route_lanes': map_layers['route_lanes'],
        'exit_lane': surface_mask(exit_surfaces, scene, grid),
    }
    return np.stack([np.asarray(layers[name], np.float32) for name in PRIVILEGED_CHANNELS])
