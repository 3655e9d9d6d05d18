"""The driving world: highway-env's roads and traffic, with an ego vehicle driven by commands.

highway-env builds the road network and populates it with IDM/MOBIL traffic from a seed. Its ego
vehicle is replaced by `EgoVehicle`, a kinematic bicycle about the rear axle with the footprint
the safety monitor and the tracking controller assume (`VehicleShape`), driven by a steering tire
angle and an acceleration as `vla_msgs/ControlCommand` carries them. The world is stepped here
directly (act, step, collisions), not through gymnasium's `step`, which needs an action space,
computes rewards and terminates episodes by its own rules.

This is the only module that knows highway-env's frame (y to the right of travel, heading
clockwise); everything it returns is mirrored into REP 103 (`vla_sim.scene`).
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import gymnasium
import highway_env  # noqa: F401 (registers the highway-env environments with gymnasium)
import numpy as np
from highway_env.road.lane import AbstractLane
from highway_env.road.road import Road
from highway_env.vehicle.behavior import IDMVehicle
from highway_env.vehicle.controller import ControlledVehicle
from highway_env.vehicle.kinematics import Vehicle
from highway_env.vehicle.objects import RoadObject

from vla_planning.collision import VehicleShape
from vla_sim.road_geometry import road_geometry_from_network
from vla_sim.scene import Actor, ActorKind, Appearance, Pose2D, RoadGeometry, Route, Scene

EGO_SHAPE = VehicleShape()
"""The simulated ego has the footprint and wheelbase the monitor and the controller assume."""
MAX_STEERING_TIRE_ANGLE_RAD = 0.70  # physical steering stop [Autoware sample vehicle: 0.70 rad]
ACCELERATION_LIMITS_MPS2 = (-8.0, 4.0)  # tyre limits of a car on dry asphalt (about 0.8 g)
INTEGRATION_STEP_S = 0.02  # the ego is integrated finer than traffic, which steps at dt

ACTOR_HEIGHTS_M = {
    ActorKind.CAR: 1.5,
    ActorKind.TRUCK: 3.6,
    ActorKind.PEDESTRIAN: 1.75,
    ActorKind.DEBRIS: 0.4,
}
NATURAL_COLOURS = (
    (200, 200, 205),
    (40, 40, 45),
    (150, 20, 25),
    (30, 60, 140),
    (235, 235, 235),
    (110, 110, 115),
    (20, 90, 50),
    (170, 140, 90),
)
UNUSUAL_COLOURS = ((255, 0, 255), (0, 255, 255), (255, 140, 0), (120, 255, 0), (255, 255, 0))


# highway-env's intersection NPCs re-plan routes that no longer start where they are and log a
# warning each time; that is traffic behaviour we do not control, not a fault of the run.
logging.getLogger('highway_env.road.road').setLevel(logging.ERROR)

_IDM_CLASS_PARAMETERS = ('DISTANCE_WANTED', 'COMFORT_ACC_MAX', 'COMFORT_ACC_MIN')
_IDM_DEFAULTS = {name: getattr(IDMVehicle, name) for name in _IDM_CLASS_PARAMETERS}
"""intersection-v0 overwrites these IDMVehicle class attributes for every later world in the
process; each World restores them first, so an episode never depends on the ones run before."""


def mirror_pose(position: np.ndarray, heading: float) -> Pose2D:
    """Return a highway-env position and heading as a REP 103 pose (y and yaw flip sign)."""
    return Pose2D(float(position[0]), -float(position[1]), -float(heading))


def wrap_angle(angle: float) -> float:
    """Return an angle in [-pi, pi)."""
    return (angle + math.pi) % (2.0 * math.pi) - math.pi


@dataclass(frozen=True)
class VehicleCommand:
    """What the ego's actuators receive, in REP 103 signs: positive steering turns left."""

    steering_tire_angle_rad: float = 0.0
    acceleration_mps2: float = 0.0


class EgoVehicle(ControlledVehicle):
    """The ego: a kinematic bicycle about the rear axle, steered and accelerated by commands.

    It keeps highway-env's conventions where traffic reads it (`position` is the box centre,
    `heading` in highway-env's frame) and ControlledVehicle's route so that lanes and routes are
    known to the expert and to the metrics; it never decides anything itself.
    """

    LENGTH = EGO_SHAPE.length_m
    WIDTH = EGO_SHAPE.width_m
    CENTRE_FROM_REAR_AXLE_M = EGO_SHAPE.length_m / 2.0 - EGO_SHAPE.rear_overhang_m

    def __init__(self, road: Road, position: np.ndarray, heading: float, speed: float) -> None:
        super().__init__(road, position, heading, speed)
        self.command = VehicleCommand()
        self.acceleration_mps2 = 0.0
        self.yaw_rate_rps = 0.0

    def act(self, action: dict | str | None = None) -> None:
        """Keep the last command: the ego only moves as commanded."""

    def step(self, dt: float) -> None:
        """Integrate the bicycle over dt with the held command; the speed never goes negative."""
        steering = -float(
            np.clip(
                self.command.steering_tire_angle_rad,
                -MAX_STEERING_TIRE_ANGLE_RAD,
                MAX_STEERING_TIRE_ANGLE_RAD,
            )
        )
        acceleration = float(np.clip(self.command.acceleration_mps2, *ACCELERATION_LIMITS_MPS2))
        if self.crashed:
            steering, acceleration = 0.0, -8.0
        speed_before = self.speed
        steps = max(1, math.ceil(dt / INTEGRATION_STEP_S - 1e-9))
        h = dt / steps
        rear = self.position - self.CENTRE_FROM_REAR_AXLE_M * self.direction
        heading = self.heading
        for _ in range(steps):
            speed = max(0.0, self.speed + acceleration * h)
            mean_speed = 0.5 * (self.speed + speed)
            yaw_rate = mean_speed * math.tan(steering) / EGO_SHAPE.wheelbase_m
            mid_heading = heading + 0.5 * yaw_rate * h
            rear = rear + mean_speed * h * np.array([math.cos(mid_heading), math.sin(mid_heading)])
            heading += yaw_rate * h
            self.speed = speed
        self.heading = heading
        self.position = rear + self.CENTRE_FROM_REAR_AXLE_M * self.direction
        self.acceleration_mps2 = (self.speed - speed_before) / dt
        self.yaw_rate_rps = -self.speed * math.tan(steering) / EGO_SHAPE.wheelbase_m
        if self.impact is not None and np.any(self.impact):
            self.position = self.position + self.impact
            self.crashed = True
            self.impact = None
        self.on_state_update()


class StaticObject(RoadObject):
    """A non-moving object on the road (debris, a lost load)."""

    LENGTH = 0.6
    WIDTH = 0.8
    KIND = ActorKind.DEBRIS

    def __init__(self, road: Road, position: np.ndarray, heading: float = 0.0) -> None:
        super().__init__(road, position, heading, 0.0)
        self.check_collisions = False  # the vehicles that hit it check; it never moves


class Pedestrian(RoadObject):
    """A person walking straight at constant speed (across the road, in the scenarios)."""

    LENGTH = 0.5
    WIDTH = 0.6
    KIND = ActorKind.PEDESTRIAN

    def __init__(self, road: Road, position: np.ndarray, heading: float, speed: float) -> None:
        super().__init__(road, position, heading, 0.0)
        self.walking_speed = speed
        self.check_collisions = False

    def walk(self, dt: float) -> None:
        """Advance along the heading (objects are not stepped by highway-env's road)."""
        self.speed = self.walking_speed
        self.position = self.position + self.speed * dt * self.direction


@dataclass(frozen=True)
class WorldSpec:
    """Which highway-env environment to build, with which configuration overrides."""

    env_id: str
    env_config: Mapping[str, Any] = field(default_factory=dict)
    ego_speed_mps: float | None = None  # None: the speed highway-env gives its ego
    ego_lane: int | None = None  # lane number to start in on the ego's road; None: as built
    traffic_radius_m: float = 250.0  # traffic further from the ego is removed (cost is O(n^2))
    spawn_period_s: float = 0.0  # intersection-v0: spawn/clear traffic this often (0: never)
    unusual_colours: bool = False


@dataclass(frozen=True)
class EgoState:
    """The ego's kinematic state in REP 103: base_link pose in the world frame, and rates."""

    pose: Pose2D
    speed_mps: float
    yaw_rate_rps: float
    acceleration_mps2: float
    lane_index: tuple[str, str, int]


class World:
    """One highway-env world from a seed, stepped by ego commands."""

    def __init__(self, spec: WorldSpec, seed: int) -> None:
        self.spec = spec
        self.seed = seed
        for name, value in _IDM_DEFAULTS.items():
            setattr(IDMVehicle, name, value)
        with warnings.catch_warnings():
            # intersection-v0 is chosen on purpose (its layout and traffic); gymnasium warns on
            # every make that a v1 exists.
            warnings.simplefilter('ignore', DeprecationWarning)
            self.env = gymnasium.make(
                spec.env_id, config={'offscreen_rendering': True, **dict(spec.env_config)}
            ).unwrapped
        self.env.reset(seed=seed)
        self.road: Road = self.env.road
        self.rng = np.random.default_rng(seed)
        self.ego = self._replace_ego(self.env.vehicle)
        self.navigation_route: Route = tuple(self.ego.route or ())
        """The route the world was built with (roundabout, intersection), before any driver
        changes the ego's: where to go is the map's to say, not the instruction's."""
        self.env.controlled_vehicles = [self.ego]
        self.env.vehicle = self.ego
        self.time_s = 0.0
        self._next_spawn_s = spec.spawn_period_s
        self._ids: dict[int, int] = {}
        self._colours: dict[int, tuple[int, int, int]] = {}
        self.pre_step_hooks: list[Callable[[World, float], None]] = []
        self._prune_traffic()

    @cached_property
    def road_geometry(self) -> RoadGeometry:
        """The static road, built on first use (the expert alone never needs it)."""
        return road_geometry_from_network(self.road.network)

    def _replace_ego(self, original: Vehicle) -> EgoVehicle:
        """Put an EgoVehicle where highway-env placed its ego, keeping its route."""
        position, heading = original.position.copy(), original.heading
        speed = self.spec.ego_speed_mps if self.spec.ego_speed_mps is not None else original.speed
        if self.spec.ego_lane is not None:
            start, end, _ = original.lane_index
            lane = self.road.network.get_lane((start, end, self.spec.ego_lane))
            longitudinal, _ = lane.local_coordinates(position)
            position, heading = lane.position(longitudinal, 0.0), lane.heading_at(longitudinal)
        ego = EgoVehicle(self.road, position, heading, speed)
        route = getattr(original, 'route', None)
        if route:
            ego.route = list(route)
        self.road.vehicles = [ego] + [
            v
            for v in self.road.vehicles
            if v is not original and np.linalg.norm(v.position - position) > v.LENGTH + 2.0
        ]
        return ego

    def lane(self, index: tuple[str, str, int]) -> AbstractLane:
        """Return a lane of the network."""
        return self.road.network.get_lane(index)

    def step(self, command: VehicleCommand, dt: float) -> None:
        """Advance the world by dt with the ego holding `command`."""
        if not dt > 0.0:
            raise ValueError(f'the world steps forward: dt must be positive, got {dt}')
        for hook in self.pre_step_hooks:
            hook(self, dt)
        self.ego.command = command
        self.road.act()
        for vehicle in self.road.vehicles:
            action = getattr(vehicle, 'action', None)
            if vehicle is not self.ego and action and 'acceleration' in action:
                # Traffic brakes to a stop, never into reverse: highway-env lets IDM's braking
                # take a vehicle's speed down to its MIN_SPEED, -40 m/s, and a car stopped
                # behind a stalled one rolled back into the ego waiting beside it.
                action['acceleration'] = max(action['acceleration'], -vehicle.speed / dt)
        self.road.step(dt)
        for obj in self.road.objects:
            if isinstance(obj, Pedestrian):
                obj.walk(dt)
        self.time_s += dt
        if self.spec.spawn_period_s and self.time_s >= self._next_spawn_s:
            self._next_spawn_s += self.spec.spawn_period_s
            self.env._clear_vehicles()
            self.env._spawn_vehicle(spawn_probability=self.env.config['spawn_probability'])
        self._prune_traffic()

    def _prune_traffic(self) -> None:
        radius = self.spec.traffic_radius_m
        self.road.vehicles = [
            v
            for v in self.road.vehicles
            if v is self.ego or np.linalg.norm(v.position - self.ego.position) < radius
        ]

    @property
    def collided(self) -> bool:
        """Whether the ego has touched another vehicle or object."""
        return bool(self.ego.crashed)

    def lateral_offset_m(self) -> float:
        """Distance of the ego's box centre from the centre of its closest lane."""
        _, lateral = self.ego.lane.local_coordinates(self.ego.position)
        return abs(float(lateral))

    @property
    def off_road(self) -> bool:
        """Whether the ego's centre has left the drivable surface by more than half a car."""
        lane = self.ego.lane
        longitudinal, lateral = lane.local_coordinates(self.ego.position)
        half_width = lane.width_at(longitudinal) / 2.0
        return bool(abs(lateral) > half_width + EGO_SHAPE.width_m / 2.0)

    def ego_state(self) -> EgoState:
        """Return the ego's base_link state in REP 103."""
        ego = self.ego
        rear = ego.position - ego.CENTRE_FROM_REAR_AXLE_M * ego.direction
        return EgoState(
            pose=mirror_pose(rear, ego.heading),
            speed_mps=float(ego.speed),
            yaw_rate_rps=float(ego.yaw_rate_rps),
            acceleration_mps2=float(ego.acceleration_mps2),
            lane_index=tuple(ego.lane_index),
        )

    def actor_id(self, obj: RoadObject) -> int:
        """Return a stable id per actor, from 1 in order of first sight (0 is never used)."""
        return self._ids.setdefault(id(obj), len(self._ids) + 1)

    def _colour(self, obj: RoadObject) -> tuple[int, int, int]:
        palette = UNUSUAL_COLOURS if self.spec.unusual_colours else NATURAL_COLOURS
        key = id(obj)
        if key not in self._colours:
            self._colours[key] = palette[int(self.rng.integers(len(palette)))]
        return self._colours[key]

    def actors(self) -> tuple[Actor, ...]:
        """Every vehicle but the ego, and every object, as boxes in REP 103."""
        result = []
        for obj in [v for v in self.road.vehicles if v is not self.ego] + list(self.road.objects):
            kind = getattr(obj, 'KIND', ActorKind.CAR)
            colour = (
                self._colour(obj)
                if kind in (ActorKind.CAR, ActorKind.TRUCK)
                else getattr(obj, 'COLOUR', (120, 80, 60))
            )
            result.append(
                Actor(
                    actor_id=self.actor_id(obj),
                    kind=kind,
                    pose=mirror_pose(obj.position, obj.heading),
                    length_m=float(obj.LENGTH),
                    width_m=float(obj.WIDTH),
                    height_m=ACTOR_HEIGHTS_M[kind],
                    speed_mps=float(obj.speed),
                    colour=colour,
                )
            )
        return tuple(result)

    def scene(self, stamp_ns: int, appearance: Appearance | None = None) -> Scene:
        """Return the world now, as the renderer, the ground truth and the metrics read it."""
        state = self.ego_state()
        return Scene(
            stamp_ns=stamp_ns,
            ego=state.pose,
            ego_speed_mps=state.speed_mps,
            actors=self.actors(),
            road=self.road_geometry,
            appearance=appearance or Appearance(),
            route=self.navigation_route,
        )
