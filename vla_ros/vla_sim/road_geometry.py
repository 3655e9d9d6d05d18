"""The static road of a highway-env road network, mirrored into the ROS world frame.

highway-env's frame has y pointing to the right of travel (its screen frame); REP 103 has y to
the left, so every point (x, y) becomes (x, -y). Lanes are sampled about every metre on curves;
a straight lane needs only its two ends, which keeps highway-env's 10 km highways cheap.
"""

from __future__ import annotations

import math

import numpy as np
from highway_env.road.lane import AbstractLane, LineType, StraightLane
from highway_env.road.road import RoadNetwork

from vla_sim.scene import LaneCentre, LaneMarking, MarkingStyle, RoadGeometry

CURVE_STEP_M = 1.0
"""Spacing of the samples along a curved lane (a 1 m chord on a 20 m radius deviates < 1 cm)."""

_STYLES = {
    LineType.CONTINUOUS: MarkingStyle.SOLID,
    LineType.CONTINUOUS_LINE: MarkingStyle.SOLID,
    LineType.STRIPED: MarkingStyle.DASHED,
}
"""highway-env line types that are painted; LineType.NONE is not."""


def _stations(lane: AbstractLane) -> np.ndarray:
    """Arc lengths at which to sample a lane: its ends if straight, else about every metre."""
    length = float(lane.length)
    if type(lane) is StraightLane:  # SineLane derives from StraightLane but is curved
        return np.array([0.0, length])
    return np.linspace(0.0, length, max(2, math.ceil(length / CURVE_STEP_M) + 1))


def _mirrored(points: list[np.ndarray]) -> np.ndarray:
    """Stack highway-env points into an (N, 2) array in the ROS frame (y mirrored)."""
    array = np.array(points, dtype=np.float64).reshape(-1, 2)
    array[:, 1] = -array[:, 1]
    return array


def road_geometry_from_network(network: RoadNetwork) -> RoadGeometry:
    """Sample every lane of a highway-env road network into surfaces, markings and centres.

    Each lane gives its polygon (left edge forward, right edge back), its centre-line, and the
    lines its line_types declare: line_types[0] at lateral -w/2 (left of travel), line_types[1]
    at +w/2. A line that two lanes both declare (same style and ends) is kept once.
    """
    surfaces: list[np.ndarray] = []
    markings: list[LaneMarking] = []
    centres: list[LaneCentre] = []
    seen_lines: set[tuple] = set()
    for from_node, to_nodes in network.graph.items():
        for to_node, lanes in to_nodes.items():
            for index, lane in enumerate(lanes):
                stations = _stations(lane)
                widths = np.array([lane.width_at(s) for s in stations])
                edges = [
                    _mirrored(
                        [
                            lane.position(s, side * w / 2)
                            for s, w in zip(stations, widths, strict=True)
                        ]
                    )
                    for side in (-1.0, 1.0)
                ]
                surfaces.append(np.concatenate([edges[0], edges[1][::-1]]))
                centres.append(
                    LaneCentre(
                        lane_id=(from_node, to_node, index),
                        points=_mirrored([lane.position(s, 0.0) for s in stations]),
                        width_m=float(widths.mean()),
                    )
                )
                for edge, line_type in zip(edges, lane.line_types, strict=True):
                    style = _STYLES.get(line_type)
                    if style is None:
                        continue
                    ends = sorted([tuple(edge[0].round(2)), tuple(edge[-1].round(2))])
                    key = (style, len(edge), *ends)
                    if key not in seen_lines:
                        seen_lines.add(key)
                        markings.append(LaneMarking(points=edge, style=style))
    return RoadGeometry(surfaces=tuple(surfaces), markings=tuple(markings), centres=tuple(centres))
