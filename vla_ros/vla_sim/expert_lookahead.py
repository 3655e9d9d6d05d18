"""What the expert would drive from here: its trajectory label for a state the student reached.

Closed-loop data aggregation (DAgger) needs labels for the states the student visits, not for
the expert's own. From any state, a deep copy of the world and of the expert (together, so the
expert drives the copy's ego) is rolled forward with the expert in control; the ego's poses at
the plan's step times, in base_link now, are the label. The copy is independent of the episode:
the world's scripted events are objects that move to the copy with their vehicles.
"""

import copy

import numpy as np

from vla_model.config import ModelConfig
from vla_model.driving_labels import in_frame_of
from vla_sim.simulation import SimulationCore


def expert_lookahead(core: SimulationCore, config: ModelConfig) -> np.ndarray:
    """Return the (horizon_steps, 3) poses the expert would reach from `core`'s current state.

    x, y (m) and heading (rad) in base_link at the current stamp, every `config.step_s` up to
    the model's horizon. The episode itself is not advanced. Raises ValueError when the plan
    step is not a whole number of simulator steps.
    """
    steps_per_point = config.step_s / core.config.step_s
    if abs(steps_per_point - round(steps_per_point)) > 1e-9:
        raise ValueError(
            f'plan step {config.step_s} s is not a multiple of the simulator step '
            f'{core.config.step_s} s'
        )
    world, expert = copy.deepcopy((core.world, core.expert))
    now = world.ego_state().pose
    poses = []
    for _ in range(config.horizon_steps):
        for _ in range(round(steps_per_point)):
            world.step(expert.step().command, core.config.step_s)
        pose = world.ego_state().pose
        poses.append((pose.x, pose.y, pose.yaw))
    return in_frame_of(np.array([now.x, now.y, now.yaw]), np.array(poses)).astype(np.float32)
