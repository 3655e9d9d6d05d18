"""Paths along highway-env's lane graph, sampled as polylines (highway-env frame).

The expert looks ahead along its own route and predicts other vehicles along theirs; both need
the centre-line ahead of a position, continuing into the next lanes of a route.
"""

from __future__ import annotations

import math

import numpy as np
from highway_env.road.road import RoadNetwork

LaneIndex = tuple[str, str, int]


def route_from(route, lane_index: LaneIndex) -> list:
    """Return the steps of `route` from the one `lane_index` lies on; all of them if none.

    highway-env's `next_lane` follows a route only while its first step is the current road
    (it drops that step at the road's end); given a route that still starts behind the car, it
    picks the next road by distance instead, not by the route.
    """
    steps = list(route or [])
    on_route = next((i for i, step in enumerate(steps) if step[:2] == lane_index[:2]), None)
    return steps[on_route:] if on_route is not None else steps


def lane_on_route(
    network: RoadNetwork,
    route,
    position: np.ndarray,
    lane_index: LaneIndex,
    tolerance_m: float = 8.0,
) -> LaneIndex:
    """Return the lane of `route` the car is on.

    That is `lane_index` if its road is on the route; where the route parts from that road's
    node, the nearest lane of the route's branch within `tolerance_m`; else `lane_index`.

    Where a ring and its exit part, the nearest lane (highway-env's `lane_index`) is the ring's
    for a few metres while the car already follows the exit (whose lane starts about a lane
    width aside): a driver taking over there must know it is leaving.
    """
    steps = list(route or [])
    if not steps or any(step[:2] == lane_index[:2] for step in steps):
        return lane_index
    branch = [
        (start, end, number)
        for start, end, _ in steps
        if start == lane_index[0]
        for number in range(len(network.graph.get(start, {}).get(end, [])))
    ]
    if not branch:
        return lane_index
    distances = [network.get_lane(lane).distance(position) for lane in branch]
    nearest = int(np.argmin(distances))
    return branch[nearest] if distances[nearest] <= tolerance_m else lane_index


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
    where the network ends, or only turns back the way it came, it stops.
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
        pending = route_from(pending, index)
        try:
            following = network.next_lane(
                index, route=pending, position=lane.position(length, 0.0)
            )
        except (KeyError, IndexError, ValueError):
            break
        if following == index or following[1] not in network.graph.get(following[0], {}):
            break
        next_lane = network.get_lane(following)
        turn = next_lane.heading_at(0.0) - lane.heading_at(length)
        if abs((turn + math.pi) % (2.0 * math.pi) - math.pi) > math.pi / 2.0:
            break  # the lane back the other way where a road ends: no way on
        index, lane, start = following, next_lane, 0.0
    if remaining > 0.0 or not points:
        points.append(lane.position(float(lane.length), 0.0))  # where the path ends, exactly
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
