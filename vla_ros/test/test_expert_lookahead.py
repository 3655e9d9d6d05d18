"""The expert's look-ahead: the label DAgger gives a state, without touching the episode."""

import numpy as np
import pytest

from vla_model.config import student
from vla_model.driving_labels import in_frame_of
from vla_sim.expert_lookahead import expert_lookahead
from vla_sim.scenarios import get_scenario
from vla_sim.simulation import SimConfig, SimulationCore


@pytest.mark.parametrize('name', ['highway', 'cut_in', 'hard_braking_lead'])
def test_the_lookahead_is_what_the_expert_then_drives(name, rig):
    """From 1 s in, across the scripted cut-in (2 s) and braking (4 s)."""
    core = SimulationCore(get_scenario(name), 0, rig, SimConfig(render=False))
    for _ in range(10):
        core.step(core.expert_decision().command)
    pose = core.world.ego_state().pose
    time_s = core.world.time_s
    label = expert_lookahead(core, student())
    assert core.world.time_s == time_s and core.world.ego_state().pose == pose  # untouched
    driven = []
    for step in range(1, 31):
        core.step(core.expert_decision().command)
        if step % 5 == 0:
            now = core.world.ego_state().pose
            driven.append((now.x, now.y, now.yaw))
    expected = in_frame_of(np.array([pose.x, pose.y, pose.yaw]), np.array(driven))
    np.testing.assert_allclose(label, expected, atol=1e-4)
    assert label[-1, 0] > 20.0  # it does go somewhere: 3 s ahead


def test_a_plan_step_that_is_no_whole_number_of_simulator_steps_is_refused(rig):
    core = SimulationCore(get_scenario('highway'), 0, rig, SimConfig(render=False))
    with pytest.raises(ValueError, match='not a multiple'):
        expert_lookahead(core, student(step_s=0.25 + 0.01))
