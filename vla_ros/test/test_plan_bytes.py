"""The inference node's VlaPlan bytes hold plan_message's fields where rclpy puts them."""

from types import SimpleNamespace

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from rclpy.serialization import deserialize_message, serialize_message
from std_msgs.msg import Header
from vla_msgs.msg import Instruction, VlaPlan

from vla_model.config import student
from vla_planning.inference_core import Plan, path_kinematics
from vla_planning.plan_bytes import plan_bytes
from vla_planning.plan_speeds import PlanAccelerationLimits, within_acceleration_limits
from vla_planning.vla_inference_node import plan_message

CONFIG = student()
LIMITS = PlanAccelerationLimits()


def plan(selected: int) -> Plan:
    rng = np.random.default_rng(selected)
    candidates = rng.normal(size=(CONFIG.num_anchors, CONFIG.horizon_steps, 3)).astype(np.float32)
    probabilities = rng.dirichlet(np.ones(CONFIG.num_anchors))
    # The published trajectory is the selected candidate re-timed within the acceleration
    # limits: other points than the candidate's, so the test tells the two apart.
    trajectory = within_acceleration_limits(candidates[selected], CONFIG.step_s, LIMITS)
    assert not np.array_equal(trajectory, candidates[selected])
    speeds, accelerations, yaw_rates = path_kinematics(trajectory, CONFIG.step_s)
    return Plan(
        stamp_ns=5,
        epoch=2,
        times_s=np.arange(1, CONFIG.horizon_steps + 1) * CONFIG.step_s,
        trajectory=trajectory,
        speeds_mps=speeds,
        accelerations_mps2=accelerations,
        yaw_rates_rps=yaw_rates,
        candidates=candidates,
        probabilities=probabilities,
        selected=selected,
        confidence=float(probabilities[selected]),
        rationale_class=1,
        rationale=CONFIG.rationales[1],
        bev_probabilities=np.zeros((len(CONFIG.bev_classes), *CONFIG.bev_size)),
        temporal_reset=False,
        preprocess_ms=0.3,
        inference_ms=38.25,
        postprocess_ms=0.4,
    )


@pytest.mark.parametrize('selected', [0, 7])
@pytest.mark.parametrize(
    ('frame_id', 'instruction'),
    [('base_link', Instruction()), ('b', Instruction(id='i-7', text='überhole den LKW'))],
)
def test_the_bytes_are_the_message_rclpy_serializes(selected, frame_id, instruction):
    header = Header(stamp=Time(sec=1_700_000_000, nanosec=123_456_789), frame_id=frame_id)
    frame = SimpleNamespace(header=header, sequence=2**40 + 1, epoch=3)
    arguments = (
        plan(selected),
        CONFIG,
        instruction,
        'vla-student@sha256:0123',
        'onnxruntime',
        51.5,
    )
    raw = plan_bytes(frame, *arguments)
    expected = serialize_message(plan_message(frame, *arguments))
    # The same fields at the same offsets; rclpy leaves its padding bytes unset, these are 0.
    assert len(raw) == len(expected)
    assert deserialize_message(raw, VlaPlan) == deserialize_message(expected, VlaPlan)
