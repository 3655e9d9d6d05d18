"""What the simulated world looks like at one instant, in ROS conventions (no highway-env type).

highway-env's world frame has y pointing to the right of travel (its screen frame); everything here
is already mirrored into a right-handed frame with z up (REP 103): x forward along the road at the
start, y to the left. Angles are yaw about +z in radians. The world frame is published as `odom`
(the simulator's ego pose has no drift, so `map` and `odom` coincide).

The renderer, the BEV ground truth, the obstacle "radar" and the metrics all read a `Scene`; only
`vla_sim.world` knows highway-env.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

import numpy as np


class ActorKind(Enum):
    """What an actor is; sets its obstacle class and how it is drawn."""

    CAR = 'car'
    TRUCK = 'truck'
    PEDESTRIAN = 'pedestrian'
    DEBRIS = 'debris'


class MarkingStyle(Enum):
    """Lane line types, as highway-env's road network declares them."""

    SOLID = 'solid'
    DASHED = 'dashed'


DASH_LENGTH_M = 3.0
"""Painted length of a dashed line's stripe [highway-env road graphics STRIPE_LENGTH]."""
DASH_PERIOD_M = 4.33
"""Distance between the starts of two stripes [highway-env road graphics STRIPE_SPACING]."""
MARKING_WIDTH_M = 0.15
"""Painted width of a lane line (a typical 0.15 m line; highway-env draws 0.3 m on screen)."""


@dataclass(frozen=True)
class Pose2D:
    """A pose on the ground plane of the world frame."""

    x: float
    y: float
    yaw: float


def footprint(pose: Pose2D, length: float, width: float) -> np.ndarray:
    """Return the four corners (4, 2) of a box footprint centred on pose, in the pose's frame."""
    c, s = np.cos(pose.yaw), np.sin(pose.yaw)
    half = np.array([[1, 1], [1, -1], [-1, -1], [-1, 1]]) * [length / 2.0, width / 2.0]
    return np.column_stack(
        [pose.x + c * half[:, 0] - s * half[:, 1], pose.y + s * half[:, 0] + c * half[:, 1]]
    )


@dataclass(frozen=True)
class Actor:
    """A box standing on the ground: another vehicle, a pedestrian or a piece of debris."""

    actor_id: int
    kind: ActorKind
    pose: Pose2D  # centre of the box's footprint, yaw of its length axis
    length_m: float
    width_m: float
    height_m: float
    speed_mps: float  # along its yaw
    colour: tuple[int, int, int]  # RGB body colour


@dataclass(frozen=True)
class LaneMarking:
    """A painted line: its centre-line as a polyline in the world frame, and its style.

    Dashes of a dashed line start at arc length 0, DASH_PERIOD_M apart, DASH_LENGTH_M long.
    """

    points: np.ndarray  # (N, 2) float64, world frame, m
    style: MarkingStyle


@dataclass(frozen=True)
class LaneCentre:
    """The centre-line of one lane, sampled along its length, with the lane's width."""

    lane_id: tuple[str, str, int]  # highway-env lane index (from node, to node, lane)
    points: np.ndarray  # (N, 2) world frame, m
    width_m: float


@dataclass(frozen=True)
class RoadGeometry:
    """The static road: drivable surface, painted lines and lane centre-lines, in the world frame.

    Built once per episode from the road network; never changes during it.
    """

    surfaces: tuple[np.ndarray, ...]  # closed polygons (N, 2) of drivable surface, one per lane
    markings: tuple[LaneMarking, ...]
    centres: tuple[LaneCentre, ...]

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(x_min, y_min, x_max, y_max) of the drivable surface."""
        points = np.concatenate(self.surfaces)
        return (
            float(points[:, 0].min()),
            float(points[:, 1].min()),
            float(points[:, 0].max()),
            float(points[:, 1].max()),
        )


@dataclass(frozen=True)
class Appearance:
    """How the world looks to the cameras: lighting and weather, applied by the renderer."""

    night: bool = False
    fog_visibility_m: float = 0.0  # 0: no fog; else the distance at which contrast falls to 5 %
    rain_noise: float = 0.0  # 0..1 strength of streak/droplet noise
    unusual_colours: bool = False  # actors get saturated, non-car-like colours


Route = tuple[tuple[str, str, int | None], ...]
"""A navigation route: the highway-env lane indices (from node, to node, lane) to drive through."""


@dataclass(frozen=True)
class Scene:
    """The world at one instant: the ego, the other actors, the road and the ego's route."""

    stamp_ns: int
    ego: Pose2D  # base_link (rear-axle centre) in the world frame
    ego_speed_mps: float
    actors: tuple[Actor, ...]
    road: RoadGeometry
    appearance: Appearance = field(default_factory=Appearance)
    route: Route = ()  # the route the world was built with (World.navigation_route); (): the road
