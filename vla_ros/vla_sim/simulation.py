"""The simulator's step core: one episode, advanced one control period at a time.

`SimulationCore.step(command)` holds the command for `step_s`, advances the world and returns
what the sensors see at the new instant: camera images (with the scenario's appearance and
faults), the ego's kinematic state, the obstacle "radar" (ground truth with configurable noise
and dropout), the BEV ground truth and the expert's rationale label. It knows nothing of ROS:
the bridge node, the recorder and the closed-loop evaluation all call this class, so a bag
recorded, a bridge run and an evaluation of the same seed see the same world.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from vla_model.config import ModelConfig
from vla_perception.rig import RigConfig
from vla_sim.bev_ground_truth import BevGrid, bev_ground_truth, map_prior
from vla_sim.camera_renderer import CameraRenderer
from vla_sim.expert import Expert, ExpertDecision
from vla_sim.image_effects import CameraFaultInjector
from vla_sim.instructions import InstructionSample, Split
from vla_sim.scenarios import ALL_CAMERAS, Scenario
from vla_sim.scene import ActorKind, Scene
from vla_sim.world import EgoState, VehicleCommand

NS_PER_S = 1_000_000_000
START_TIME_NS = 1_000_000_000
"""Simulated clock at the start of every episode (1 s, so no stamp is ever zero)."""

OBSTACLE_CLASSES = {  # vla_msgs/Obstacle CLASS_* values
    ActorKind.CAR: 1,
    ActorKind.TRUCK: 2,
    ActorKind.PEDESTRIAN: 6,
    ActorKind.DEBRIS: 8,
}


@dataclass(frozen=True)
class SimConfig:
    """How the simulator samples the world."""

    step_s: float = 0.1  # control and camera period: the world advances this much per step
    render: bool = True  # False: no images (the expert and metrics do not need them)
    obstacle_range_m: float = 120.0  # the "radar" sees this far from base_link
    obstacle_position_noise_m: float = 0.0  # one-sigma Gaussian noise on obstacle positions
    obstacle_velocity_noise_mps: float = 0.0
    obstacle_dropout: float = 0.0  # probability that an obstacle is missing from one frame


@dataclass(frozen=True)
class ObstacleTruth:
    """An obstacle as the simulated radar reports it, in the world (odom) frame."""

    obstacle_id: int
    classification: int  # vla_msgs/Obstacle CLASS_*
    x: float
    y: float
    yaw: float
    length_m: float
    width_m: float
    height_m: float
    vx: float
    vy: float
    position_stddev_m: float
    velocity_stddev_mps: float


@dataclass(frozen=True)
class SimFrame:
    """What the sensors see at one instant, and the ground truth for labels and metrics."""

    stamp_ns: int
    ego: EgoState
    images: dict[str, np.ndarray]  # camera name -> RGB; empty when rendering is off
    obstacles: tuple[ObstacleTruth, ...]
    bev: dict[str, np.ndarray]  # class -> (rows, cols) bool, in base_link
    map_prior: dict[str, np.ndarray]  # map layer -> (rows, cols) bool, in base_link
    scene: Scene


class SimulationCore:
    """One seeded episode of a scenario."""

    def __init__(
        self,
        scenario: Scenario,
        seed: int,
        rig: RigConfig,
        config: SimConfig | None = None,
        split: Split = Split.TRAIN,
        bev_grid: BevGrid | None = None,
        instruction: InstructionSample | None = None,
    ) -> None:
        """Build the seeded episode; `instruction` replaces the one the scenario would draw."""
        self.scenario = scenario
        self.seed = seed
        self.rig = rig
        self.config = config or SimConfig()
        self.episode = scenario.episode(seed, split)
        if instruction is not None:
            self.episode.instruction = instruction
        self.world = self.episode.world
        self.expert = Expert(self.world, self.episode.instruction, period_s=self.config.step_s)
        self.bev_grid = bev_grid or BevGrid.from_model(ModelConfig())
        self.renderer = CameraRenderer(rig) if self.config.render else None
        self.faults = CameraFaultInjector(seed)
        self._radar_rng = np.random.default_rng([seed, 1])
        self.steps = 0
        self.frame = self._observe()

    @property
    def instruction(self) -> InstructionSample:
        """The episode's instruction."""
        return self.episode.instruction

    @property
    def stamp_ns(self) -> int:
        """The simulated clock now."""
        return START_TIME_NS + round(self.world.time_s * NS_PER_S)

    @property
    def done(self) -> bool:
        """The episode is over: its time is up, or the ego collided or left the road."""
        finished = self.world.time_s >= self.scenario.duration_s - 1e-9
        return finished or self.world.collided or self.world.off_road

    def expert_decision(self) -> ExpertDecision:
        """Ask the privileged expert what it would do now (its command and rationale label)."""
        return self.expert.step()

    def step(self, command: VehicleCommand) -> SimFrame:
        """Hold `command` for one period, advance the world and observe it."""
        self.world.step(command, self.config.step_s)
        self.steps += 1
        self.frame = self._observe()
        return self.frame

    def _observe(self) -> SimFrame:
        stamp = self.stamp_ns
        scene = self.world.scene(stamp, self.scenario.appearance)
        images: dict[str, np.ndarray] = {}
        if self.renderer is not None:
            images = self._apply_faults(self.renderer.render(scene))
        return SimFrame(
            stamp_ns=stamp,
            ego=self.world.ego_state(),
            images=images,
            obstacles=self._radar(scene),
            bev=bev_ground_truth(scene, self.bev_grid),
            map_prior=map_prior(scene, self.bev_grid),
            scene=scene,
        )

    def _apply_faults(self, images: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        now = self.world.time_s
        active = {}
        for window in self.scenario.camera_faults:
            if window.start_s <= now < window.end_s:
                names = images if window.camera == ALL_CAMERAS else [window.camera]
                active.update({name: window.fault for name in names if name in images})
        return {
            name: self.faults.apply(name, image, active.get(name))
            for name, image in images.items()
        }

    def _radar(self, scene: Scene) -> tuple[ObstacleTruth, ...]:
        config, rng = self.config, self._radar_rng
        ego = scene.ego
        result = []
        for actor in scene.actors:
            if math.hypot(actor.pose.x - ego.x, actor.pose.y - ego.y) > config.obstacle_range_m:
                continue
            if config.obstacle_dropout and rng.random() < config.obstacle_dropout:
                continue
            position_noise = rng.normal(0.0, config.obstacle_position_noise_m, 2)
            velocity_noise = rng.normal(0.0, config.obstacle_velocity_noise_mps, 2)
            result.append(
                ObstacleTruth(
                    obstacle_id=actor.actor_id,
                    classification=OBSTACLE_CLASSES[actor.kind],
                    x=actor.pose.x + float(position_noise[0]),
                    y=actor.pose.y + float(position_noise[1]),
                    yaw=actor.pose.yaw,
                    length_m=actor.length_m,
                    width_m=actor.width_m,
                    height_m=actor.height_m,
                    vx=actor.speed_mps * math.cos(actor.pose.yaw) + float(velocity_noise[0]),
                    vy=actor.speed_mps * math.sin(actor.pose.yaw) + float(velocity_noise[1]),
                    position_stddev_m=config.obstacle_position_noise_m,
                    velocity_stddev_mps=config.obstacle_velocity_noise_mps,
                )
            )
        return tuple(result)
