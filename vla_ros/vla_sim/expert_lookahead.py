"""What the expert would drive from here: its trajectory label for a state the student reached.

Closed-loop data aggregation (DAgger) needs labels for the states the student visits, not for
the expert's own. From any state, a deep copy of the world and of the expert (together, so the
expert drives the copy's ego) is rolled forward with the expert in control; the ego's poses at
the plan's step times, in base_link now, are the label. The copy is independent of the episode:
the world's scripted events are objects that move to the copy with their vehicles.

Given another instruction, a fresh expert for it drives the copy instead, from the ego's current
command and lane (so its rate limits start where the car is, and it changes lanes only by its
own decision): the counterfactual label "had you been told
this now", which teaches the model that the same scene asks for different plans under
different words.
"""

import copy

import numpy as np

from vla_model.config import ModelConfig
from vla_model.driving_labels import in_frame_of
from vla_sim.expert import Expert
from vla_sim.instructions import InstructionSample
from vla_sim.route_paths import lane_on_route, route_from
from vla_sim.simulation import SimulationCore


def expert_rollout(
    core: SimulationCore,
    config: ModelConfig,
    instruction: InstructionSample | None = None,
    lane_change_done: bool = False,
) -> tuple[np.ndarray, int]:
    """Return the expert's (horizon_steps, 3) poses from `core`'s state, and its rationale now.

    Poses are x, y (m) and heading (rad) in base_link at the current stamp, every
    `config.step_s` up to the model's horizon; the rationale is the class of the expert's first
    decision. `instruction`: a fresh expert follows this one instead of the episode's expert (it
    keeps the episode's home lane, so it knows a junction it is in); `lane_change_done`: that
    expert's instructed lane change has already been made (by whoever drove). The episode
    itself is not advanced. Raises ValueError when the plan step is not a whole number
    of simulator steps.
    """
    steps_per_point = config.step_s / core.config.step_s
    if abs(steps_per_point - round(steps_per_point)) > 1e-9:
        raise ValueError(
            f'plan step {config.step_s} s is not a multiple of the simulator step '
            f'{core.config.step_s} s'
        )
    if instruction is None:
        world, expert = copy.deepcopy((core.world, core.expert))
    else:
        world = copy.deepcopy(core.world)
        # A fresh expert starts in the lane the car is in (a target lane left by whoever steered
        # before would make it steer back there), on the map's route from there: a route that
        # still starts behind the car makes highway-env choose the ring's next road by
        # distance, not by the route, and a ring's exit lane parts from the ring's lane there.
        ego = world.ego
        ego.target_lane_index = lane_on_route(
            world.road.network, world.navigation_route, ego.position, ego.lane_index
        )
        ego.route = route_from(world.navigation_route, ego.target_lane_index) or None
        expert = Expert(world, instruction, period_s=core.config.step_s)
        expert.last_command = world.ego.command
        expert.home_lane = core.expert.home_lane
        expert.lane_change_done = lane_change_done
    now = world.ego_state().pose
    poses, rationale = [], None
    for _ in range(config.horizon_steps):
        for _ in range(round(steps_per_point)):
            decision = expert.step()
            rationale = decision.rationale if rationale is None else rationale
            world.step(decision.command, core.config.step_s)
        pose = world.ego_state().pose
        poses.append((pose.x, pose.y, pose.yaw))
    label = in_frame_of(np.array([now.x, now.y, now.yaw]), np.array(poses)).astype(np.float32)
    return label, rationale


def expert_lookahead(core: SimulationCore, config: ModelConfig) -> np.ndarray:
    """Return the (horizon_steps, 3) poses the episode's expert would reach from `core`'s state."""
    return expert_rollout(core, config)[0]
