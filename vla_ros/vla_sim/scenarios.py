"""The scenario library: named, seeded episodes on highway-env worlds.

A scenario fixes the environment and its traffic, the events placed around the ego, the
instructions it may be given, how the cameras see (appearance, sensor faults) and how long an
episode lasts. `Scenario.episode(seed, split)` gives everything an episode needs; the same seed
always gives the same world, instruction and faults.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from vla_sim.image_effects import CameraFault
from vla_sim.instructions import InstructionGenerator, InstructionSample, Intent, Split
from vla_sim.long_tail import (
    CrossingPedestrian,
    CutIn,
    Debris,
    Event,
    HardBrakingLead,
    SlowTruck,
    StalledInLane,
)
from vla_sim.scene import Appearance
from vla_sim.world import World, WorldSpec

ALL_CAMERAS = '*'
"""A camera-fault target meaning every camera of the rig."""


@dataclass(frozen=True)
class CameraFaultWindow:
    """A camera fault active from `start_s` to `end_s` of the episode."""

    camera: str  # a rig camera name, or ALL_CAMERAS
    fault: CameraFault
    start_s: float
    end_s: float


@dataclass(frozen=True)
class Scenario:
    """One family of episodes."""

    name: str
    description: str
    world: WorldSpec
    intents: tuple[Intent, ...] = (Intent.KEEP_LANE,)
    target_speeds_mps: tuple[float, ...] = ()  # SET_SPEED targets to draw from
    duration_s: float = 20.0
    events: tuple[Event, ...] = ()
    appearance: Appearance = field(default_factory=Appearance)
    camera_faults: tuple[CameraFaultWindow, ...] = ()
    nominal: bool = False

    def episode(self, seed: int, split: Split = Split.TRAIN) -> Episode:
        """Build the world and draw the instruction of one seeded episode."""
        world = World(self.world, seed)
        for event in self.events:
            event.install(world)
        rng = random.Random(f'{self.name}/{seed}')
        intent = self.intents[rng.randrange(len(self.intents))]
        speed = None
        if intent is Intent.SET_SPEED:
            speed = self.target_speeds_mps[rng.randrange(len(self.target_speeds_mps))]
        instruction = InstructionGenerator(split, seed).sample(intent, speed)
        return Episode(self, seed, world, instruction)


@dataclass
class Episode:
    """A scenario instance: its world (mutable, stepped by the caller) and its instruction."""

    scenario: Scenario
    seed: int
    world: World
    instruction: InstructionSample


_HIGHWAY = {'lanes_count': 4, 'vehicles_count': 20, 'vehicles_density': 1.0}
_HIGHWAY_EGO = {'ego_lane': 1, 'ego_speed_mps': 22.0}


def _highway(name: str, description: str, **kwargs) -> Scenario:
    world = kwargs.pop('world', WorldSpec('highway-v0', _HIGHWAY, **_HIGHWAY_EGO))
    return Scenario(name, description, world, **kwargs)


def _front_fault(fault: CameraFault, camera: str = 'front') -> tuple[CameraFaultWindow, ...]:
    return (CameraFaultWindow(camera, fault, 3.0, 9.0),)


SCENARIOS: dict[str, Scenario] = {
    scenario.name: scenario
    for scenario in (
        _highway(
            'highway',
            'Four-lane highway traffic; keep lane, change lane, follow, or a new speed.',
            intents=(
                Intent.KEEP_LANE,
                Intent.CHANGE_LANE_LEFT,
                Intent.CHANGE_LANE_RIGHT,
                Intent.SET_SPEED,
                Intent.FOLLOW_LEAD,
            ),
            target_speeds_mps=(15.0, 16.7, 18.1, 19.4),
            nominal=True,
        ),
        Scenario(
            'merge',
            'Highway with vehicles merging from an on-ramp ahead.',
            WorldSpec('merge-v0', {}, ego_speed_mps=25.0),
            duration_s=15.0,
            nominal=True,
        ),
        Scenario(
            'roundabout',
            'Enter a two-lane roundabout with circulating traffic and leave it.',
            WorldSpec('roundabout-v0', {}),
            duration_s=20.0,
            nominal=True,
        ),
        Scenario(
            'intersection',
            'Cross an unsignalised four-way intersection with traffic (straight or turning).',
            WorldSpec(
                'intersection-v0',
                {'initial_vehicle_count': 4, 'spawn_probability': 0.15},
                spawn_period_s=1.0,
            ),
            duration_s=30.0,
            nominal=True,
        ),
        Scenario(
            'exit',
            'Three-lane highway: reach the exit lane and take the exit.',
            WorldSpec(
                'exit-v0',
                {'lanes_count': 3, 'vehicles_count': 12, 'vehicles_density': 1.0},
                ego_speed_mps=22.0,
            ),
            intents=(Intent.TAKE_EXIT,),
            duration_s=30.0,
            nominal=True,
        ),
        _highway(
            'pull_over', 'Highway: pull over in the rightmost lane.', intents=(Intent.PULL_OVER,)
        ),
        _highway(
            'stop_behind_lead',
            'A car stalled ahead; the instruction is to stop behind it.',
            intents=(Intent.STOP_BEHIND_LEAD,),
            events=(StalledInLane(100.0),),
        ),
        _highway('cut_in', 'A vehicle cuts in 10 m ahead.', events=(CutIn(),)),
        _highway(
            'hard_braking_lead',
            'The lead brakes at 6 m/s^2 to a stop.',
            events=(HardBrakingLead(),),
        ),
        _highway(
            'stalled_vehicle',
            'A car stalled in the ego lane 120 m ahead.',
            events=(StalledInLane(),),
        ),
        _highway('slow_truck', 'A truck at 15 m/s in the ego lane.', events=(SlowTruck(),)),
        _highway(
            'dense_traffic',
            'Twice the traffic density.',
            world=WorldSpec(
                'highway-v0',
                {**_HIGHWAY, 'vehicles_count': 35, 'vehicles_density': 2.0},
                **_HIGHWAY_EGO,
            ),
        ),
        _highway('debris', 'A small object lies in the ego lane 100 m ahead.', events=(Debris(),)),
        _highway(
            'crossing_pedestrian',
            'A pedestrian walks across the carriageway ahead.',
            events=(CrossingPedestrian(),),
            world=WorldSpec('highway-v0', _HIGHWAY, ego_lane=1, ego_speed_mps=14.0),
        ),
        _highway(
            'camera_blackout',
            'The front camera is black 3-9 s.',
            camera_faults=_front_fault(CameraFault.BLACKOUT),
        ),
        _highway(
            'frozen_frame',
            'The front camera repeats one frame 3-9 s.',
            camera_faults=_front_fault(CameraFault.FROZEN),
        ),
        _highway(
            'heavy_noise',
            'Every camera is drowned in noise 3-9 s.',
            camera_faults=_front_fault(CameraFault.NOISE, ALL_CAMERAS),
        ),
        _highway('night', 'Highway at night.', appearance=Appearance(night=True)),
        _highway(
            'fog',
            'Highway in fog (60 m visibility).',
            appearance=Appearance(fog_visibility_m=60.0),
        ),
        _highway('rain', 'Highway in rain-like noise.', appearance=Appearance(rain_noise=0.6)),
        _highway(
            'unusual_colours',
            'Vehicles in colours cars rarely have.',
            world=WorldSpec('highway-v0', _HIGHWAY, unusual_colours=True, **_HIGHWAY_EGO),
        ),
    )
}
NOMINAL = tuple(name for name, scenario in SCENARIOS.items() if scenario.nominal)


def get_scenario(name: str) -> Scenario:
    """Return a scenario by name; the error lists the known names."""
    try:
        return SCENARIOS[name]
    except KeyError:
        raise KeyError(f'unknown scenario {name!r}; known: {", ".join(SCENARIOS)}') from None
