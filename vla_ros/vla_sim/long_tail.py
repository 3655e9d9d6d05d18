"""Long-tail traffic events placed into a World relative to the ego: the cases that hurt.

Each event is installed once, when the episode starts, and may act at a scripted time. They use
highway-env's own vehicle classes so the rest of the traffic reacts to them as it would to any
vehicle (IDM vehicles brake for a stalled car and change lanes around it with MOBIL).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from highway_env.vehicle.behavior import IDMVehicle
from highway_env.vehicle.kinematics import Vehicle

from vla_sim.scene import ActorKind
from vla_sim.world import Pedestrian, StaticObject, World


class StalledVehicle(Vehicle):
    """A broken-down car standing in its lane: it never moves."""

    def act(self, action: dict | str | None = None) -> None:
        """Do nothing: the car is stalled."""

    def step(self, dt: float) -> None:
        """Stay put (only a collision would move it, and that ends the episode)."""
        self.speed = 0.0


class BrakingVehicle(IDMVehicle):
    """An IDM vehicle that brakes hard to a stop once told to."""

    braking: bool = False
    deceleration_mps2: float = 6.0

    def act(self, action: dict | str | None = None) -> None:
        """Drive as IDM until braking, then brake to a standstill in lane."""
        super().act(action)
        if self.braking:
            self.action['acceleration'] = -self.deceleration_mps2 if self.speed > 0.0 else 0.0

    def step(self, dt: float) -> None:
        """Step, never reversing."""
        super().step(dt)
        self.speed = max(self.speed, 0.0)


class Truck(IDMVehicle):
    """A slow heavy vehicle that keeps its lane."""

    LENGTH = 12.0
    WIDTH = 2.5
    KIND = ActorKind.TRUCK


def _ego_lane_position(world: World, ahead_m: float, lane_offset: int = 0) -> tuple:
    """Return lane, index and position `ahead_m` ahead of the ego, `lane_offset` lanes over."""
    start, end, number = world.ego.lane_index
    count = len(world.road.network.graph[start][end])
    number = int(np.clip(number + lane_offset, 0, count - 1))
    lane = world.lane((start, end, number))
    longitudinal, _ = lane.local_coordinates(world.ego.position)
    return (start, end, number), lane, float(longitudinal + ahead_m)


def _clear_around(world: World, position: np.ndarray, radius_m: float) -> None:
    """Remove traffic that would overlap a placed actor."""
    world.road.vehicles = [
        v
        for v in world.road.vehicles
        if v is world.ego or np.linalg.norm(v.position - position) > radius_m
    ]


@dataclass
class _LaneChangeAt:
    """A pre-step hook: from `at_s` on, `vehicle` changes into `lane`.

    Hooks are objects that hold their vehicle, not closures over it, so that a deep copy of a
    world (an expert's look-ahead rollout) carries hooks that act on the copy's vehicles.
    """

    vehicle: IDMVehicle
    lane: tuple[str, str, int]
    at_s: float

    def __call__(self, world: World, dt: float) -> None:
        if world.time_s >= self.at_s and self.vehicle.target_lane_index != self.lane:
            self.vehicle.target_lane_index = self.lane


@dataclass
class _BrakeFrom:
    """A pre-step hook: `vehicle` brakes from `at_s` on (see _LaneChangeAt on why an object)."""

    vehicle: BrakingVehicle
    at_s: float

    def __call__(self, world: World, dt: float) -> None:
        self.vehicle.braking = world.time_s >= self.at_s


@dataclass(frozen=True)
class CutIn:
    """A vehicle in the next lane, slightly ahead and slower, that cuts in at a short gap."""

    gap_m: float = 10.0
    at_s: float = 2.0
    speed_delta_mps: float = 0.0

    def install(self, world: World) -> None:
        """Place the cutting vehicle and schedule its lane change."""
        side = -1 if world.ego.lane_index[2] > 0 else 1
        index, lane, s = _ego_lane_position(world, self.gap_m + world.ego.LENGTH, side)
        vehicle = IDMVehicle(world.road, lane.position(s, 0.0), lane.heading_at(s))
        vehicle.speed = world.ego.speed + self.speed_delta_mps
        vehicle.target_speed = vehicle.speed
        vehicle.enable_lane_change = False
        _clear_around(world, vehicle.position, 12.0)
        world.road.vehicles.append(vehicle)
        world.pre_step_hooks.append(_LaneChangeAt(vehicle, world.ego.lane_index, self.at_s))


@dataclass(frozen=True)
class HardBrakingLead:
    """The vehicle ahead brakes hard to a stop."""

    gap_m: float = 30.0
    at_s: float = 4.0
    deceleration_mps2: float = 6.0

    def install(self, world: World) -> None:
        """Place the lead in the ego's lane at the ego's speed."""
        index, lane, s = _ego_lane_position(world, self.gap_m + world.ego.LENGTH)
        vehicle = BrakingVehicle(world.road, lane.position(s, 0.0), lane.heading_at(s))
        vehicle.speed = vehicle.target_speed = world.ego.speed
        vehicle.enable_lane_change = False
        vehicle.deceleration_mps2 = self.deceleration_mps2
        _clear_around(world, vehicle.position, 15.0)
        world.road.vehicles.append(vehicle)
        world.pre_step_hooks.append(_BrakeFrom(vehicle, self.at_s))


@dataclass(frozen=True)
class StalledInLane:
    """A stalled car in the ego's lane ahead."""

    distance_m: float = 120.0

    def install(self, world: World) -> None:
        """Place the stalled car."""
        _, lane, s = _ego_lane_position(world, self.distance_m)
        vehicle = StalledVehicle(world.road, lane.position(s, 0.0), lane.heading_at(s), 0.0)
        _clear_around(world, vehicle.position, 15.0)
        world.road.vehicles.append(vehicle)


@dataclass(frozen=True)
class SlowTruck:
    """A truck well below traffic speed in the ego's lane."""

    distance_m: float = 60.0
    speed_mps: float = 15.0

    def install(self, world: World) -> None:
        """Place the truck."""
        _, lane, s = _ego_lane_position(world, self.distance_m)
        truck = Truck(world.road, lane.position(s, 0.0), lane.heading_at(s), self.speed_mps)
        truck.target_speed = self.speed_mps
        truck.enable_lane_change = False
        _clear_around(world, truck.position, 20.0)
        world.road.vehicles.append(truck)


@dataclass(frozen=True)
class Debris:
    """A small static object lying in the ego's lane."""

    distance_m: float = 100.0

    def install(self, world: World) -> None:
        """Place the object."""
        _, lane, s = _ego_lane_position(world, self.distance_m)
        world.road.objects.append(StaticObject(world.road, lane.position(s, 0.0)))


@dataclass(frozen=True)
class CrossingPedestrian:
    """A person who walks across the whole carriageway, starting at its left edge ahead.

    `distance_m` ahead of the ego when the episode starts; they walk at `speed_mps` across the
    lanes, so they are in the ego's lane roughly when the ego arrives at its initial speed.
    """

    distance_m: float = 90.0
    speed_mps: float = 1.4

    def install(self, world: World) -> None:
        """Place the pedestrian at the left road edge (lane 0's outer side), facing across."""
        start, end, _ = world.ego.lane_index
        lane = world.lane((start, end, 0))
        longitudinal, _ = lane.local_coordinates(world.ego.position)
        s = longitudinal + self.distance_m
        edge = lane.position(s, -lane.width_at(s) / 2.0 - 1.0)
        heading = lane.heading_at(s) + np.pi / 2.0  # towards higher lane numbers
        world.road.objects.append(Pedestrian(world.road, edge, heading, self.speed_mps))


Event = CutIn | HardBrakingLead | StalledInLane | SlowTruck | Debris | CrossingPedestrian
