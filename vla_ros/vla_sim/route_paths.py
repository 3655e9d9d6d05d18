"""Paths along highway-env's lane graph, sampled as polylines (highway-env frame).

The expert looks ahead along its own route and predicts other vehicles along theirs; both need
the centre-line ahead of a position, continuing into the next lanes of a route.
"""

from __future__ import annotations

import numpy as np
from highway_env.road.road import RoadNetwork

LaneIndex = tuple[str, str, int]


def path_ahead(
    network: RoadNetwork,
    lane_index: LaneIndex,
    position: np.ndarray,
    route: list | None,
    distance_m: float,
    spacing_m: float = 1.0,
) -> np.ndarray:
    """Return (N, 2) centre-line points from `position`'s projection, `distance_m` along the route.

    At a lane's end the path continues into the lane `network.next_lane` gives for the route;
    where the network ends, it stops.
    """
    points = []
    index = lane_index
    lane = network.get_lane(index)
    start, _ = lane.local_coordinates(position)
    start = max(0.0, float(start))
    remaining = distance_m
    pending = list(route or [])
    for _ in range(8):
        length = float(lane.length)
        end = min(length, start + remaining)
        if end > start:
            samples = np.arange(start, end, spacing_m)
            points.extend(lane.position(float(s), 0.0) for s in samples)
            remaining -= end - start
        if remaining <= 0.0:
            break
        on_route = next((i for i, step in enumerate(pending) if step[:2] == index[:2]), None)
        if on_route is not None:
            pending = pending[on_route:]
        try:
            following = network.next_lane(
                index, route=pending, position=lane.position(length, 0.0)
            )
        except (KeyError, IndexError, ValueError):
            break
        if following == index or following[1] not in network.graph.get(following[0], {}):
            break
        index, lane, start = following, network.get_lane(following), 0.0
    if not points:
        points.append(lane.position(start, 0.0))
    return np.asarray(points, dtype=float)


def arc_lengths(path: np.ndarray) -> np.ndarray:
    """Cumulative distance along a polyline, 0 at its first point."""
    if len(path) < 2:
        return np.zeros(len(path))
    return np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(path, axis=0), axis=1))])


def locate_on_path(
    path: np.ndarray, arcs: np.ndarray, points: np.ndarray
) -> tuple[np.ndarray, ...]:
    """Return (arc length, lateral distance) of each point's nearest path sample."""
    deltas = points[:, None, :] - path[None, :, :]
    distances = np.linalg.norm(deltas, axis=2)
    nearest = np.argmin(distances, axis=1)
    return arcs[nearest], distances[np.arange(len(points)), nearest]


def point_at_arc(path: np.ndarray, arcs: np.ndarray, arc: float) -> np.ndarray:
    """Return the point `arc` metres along a polyline (clamped to its ends)."""
    x = np.interp(arc, arcs, path[:, 0])
    y = np.interp(arc, arcs, path[:, 1])
    return np.array([x, y])


def curvature_ahead(path: np.ndarray, arcs: np.ndarray, window_m: float = 6.0) -> np.ndarray:
    """Absolute curvature (1/m) at each sample, from the heading change over `window_m`."""
    if len(path) < 3:
        return np.zeros(len(path))
    headings = np.unwrap(np.arctan2(*np.diff(path, axis=0).T[::-1]))
    headings = np.append(headings, headings[-1])
    shift = max(1, int(round(window_m / max(1e-6, arcs[-1] / (len(path) - 1)))))
    ahead = np.minimum(np.arange(len(path)) + shift, len(path) - 1)
    span = np.maximum(arcs[ahead] - arcs, 1e-6)
    return np.abs(headings[ahead] - headings) / span
