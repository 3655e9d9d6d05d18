"""The VlaPlan of a frame's plan, written straight to its serialized (CDR) bytes.

What vla_inference_node publishes: the plan's 17 trajectories (the selected one, within the
plan's acceleration limits, and 16 candidates of 6 points) as rclpy messages took 1.1-1.5 ms to
build and 0.6-0.8 ms more to convert and serialize on the (loaded) development VM, between the
forward pass and the safety monitor; writing the bytes takes 0.3 ms. They hold the fields of
`plan_message` at the offsets rclpy puts them (a test compares the two). ROS-free.
"""

import numpy as np
from vla_msgs.msg import Trajectory

from vla_model.config import ModelConfig
from vla_model.trajectory_messages import write_trajectory
from vla_perception.synchronizer import stamp_to_ns
from vla_planning.inference_core import Plan, path_kinematics
from vla_ros.raw_messages import CdrWriter


def plan_bytes(
    frame: object,
    plan: Plan,
    config: ModelConfig,
    instruction: object,
    model: str,
    backend: str,
    input_to_output_ms: float,
) -> bytes:
    """Return the serialized VlaPlan that plan_message builds (same arguments)."""
    out = CdrWriter()
    header = (stamp_to_ns(frame.header.stamp), frame.header.frame_id)
    out.header(*header)
    out.number('Q', frame.sequence)
    out.number('I', frame.epoch)
    kinematics = [path_kinematics(candidate, config.step_s) for candidate in plan.candidates]

    def trajectory(index: int) -> None:
        write_trajectory(
            out,
            header,
            Trajectory.ORIGIN_MODEL,
            plan.times_s,
            plan.candidates[index],
            *kinematics[index],
        )

    # The selected candidate within the plan's acceleration limits.
    write_trajectory(out, header, Trajectory.ORIGIN_MODEL, *plan.published_arrays())
    out.number('I', len(plan.candidates))
    for index in range(len(plan.candidates)):
        trajectory(index)
    out.sequence('f', plan.probabilities.astype(np.float32).tolist())
    out.number('I', plan.selected)
    out.number('f', plan.confidence)
    out.number('i', plan.rationale_class)
    for text in (plan.rationale, instruction.id, instruction.text):
        out.string(text)
    out.number('?', False)  # map_prior_used, which plan_message leaves unset
    out.string(model)
    out.string(backend)
    out.numbers(
        'f', (plan.preprocess_ms, plan.inference_ms, plan.postprocess_ms, input_to_output_ms)
    )
    return out.getvalue()
