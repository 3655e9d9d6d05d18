"""The privileged teacher driving the simulator, through the student's monitor and controller.

Each step the teacher plans from the ground-truth raster of the frame (no cameras are rendered),
its plan becomes the VlaPlan the inference node would publish (same post-processing: selected
candidate, speed profile, rationale), and the safety monitor and tracking controller the nodes
wrap judge and track it (vla_sim.safety_loop). So `vla sim eval --driver teacher` measures the
policy stage alone, on the terms the camera student is measured on.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from std_msgs.msg import Header
from vla_msgs.msg import InputStatus, SensorFrame, SensorStatus

from vla_model.artifacts import load_teacher
from vla_model.instruction_features import instruction_input
from vla_model.teacher_network import PrivilegedTeacher
from vla_planning.inference_core import Plan, plan_fields
from vla_planning.plan_speeds import PlanAccelerationLimits
from vla_planning.vla_inference_node import plan_message
from vla_ros.stamps import to_time
from vla_sim.evaluation import DriverOutput
from vla_sim.pipeline_driver import shared_instruction_encoder
from vla_sim.safety_loop import SafetyLoop, path_in_world, shown_rationale
from vla_sim.sim_messages import (
    BASE_FRAME,
    instruction_message,
    obstacles_message,
    odometry_message,
)
from vla_sim.simulation import SimFrame, SimulationCore
from vla_sim.teacher_data import ego_state, teacher_raster


def all_inputs_ok(stamp: int, cameras: tuple[str, ...]) -> SensorStatus:
    """Return the sensor status of privileged sensing: every camera and the odometry OK."""
    header = Header(stamp=to_time(stamp), frame_id=BASE_FRAME)
    status = SensorStatus(header=header, complete=True)
    status.cameras = [InputStatus(name=name, health=InputStatus.HEALTH_OK) for name in cameras]
    status.odometry = InputStatus(name='odometry', health=InputStatus.HEALTH_OK)
    return status


class TeacherDriver:
    """Drive a SimulationCore with the privileged teacher, the safety monitor and control."""

    name = 'teacher'

    def __init__(
        self,
        weights: Path | None = None,
        weights_sha256: str | None = None,
        *,
        model: PrivilegedTeacher | None = None,
        enforce: bool = True,
    ) -> None:
        """Load the teacher from `weights` (pinned by `weights_sha256`), or use `model`."""
        if model is None:
            if weights is None:
                raise ValueError('the teacher driver needs weights or a model')
            model, sha256 = load_teacher(weights, weights_sha256)
            self.model_id = f'{model.config.name}@sha256:{sha256[:12]}'
        else:
            self.model_id = f'{model.config.name}@in-memory'
        self.model = model.eval()
        # A batch-1 forward of this size (3.6 ms on one core) gains nothing from a second
        # thread, and takes 50x longer when the other core is busy (threads spin and wait).
        torch.set_num_threads(1)
        self.config = model.config
        self.enforce = enforce
        self.limits = PlanAccelerationLimits()  # vla_inference_node's defaults
        self.plan_ms = 0.0

    def reset(self, core: SimulationCore) -> None:
        """Start an episode: a fresh monitor and controller, the episode's instruction."""
        self._safety = SafetyLoop(self.enforce)
        self._instruction = instruction_message(core.instruction, core.stamp_ns, core.seed)
        text = self._instruction.text
        self._instruction_input = torch.from_numpy(
            instruction_input(
                shared_instruction_encoder().encode(text), text, self.config.plan.speed_slot
            )
        )[None]
        self._start_s = core.world.time_s
        self._sequence = 0

    def plan(self, core: SimulationCore, frame: SimFrame) -> Plan:
        """Return the teacher's plan for `frame`."""
        start = time.perf_counter()
        raster = torch.from_numpy(teacher_raster(core, frame))[None]
        age = core.world.time_s - self._start_s
        state = torch.from_numpy(ego_state(frame, age, self.config.plan))[None]
        with torch.inference_mode():
            trajectories, scores, rationale = self.model(raster, state, self._instruction_input)
        outputs = {
            'trajectories': trajectories.numpy(),
            'scores': scores.numpy(),
            'rationale': rationale.numpy(),
        }
        self.plan_ms = (time.perf_counter() - start) * 1e3
        fields = plan_fields(self.config.plan, frame.stamp_ns, 0, outputs, False, self.limits)
        return Plan(**fields, preprocess_ms=0.0, inference_ms=self.plan_ms, postprocess_ms=0.0)

    def drive(self, core: SimulationCore, frame: SimFrame) -> DriverOutput:
        """Plan, judge and track once on `frame`; return the command for the next period."""
        stamp = frame.stamp_ns
        plan = self.plan(core, frame)
        header = Header(stamp=to_time(stamp), frame_id=BASE_FRAME)
        sensor_frame = SensorFrame(header=header, sequence=self._sequence, epoch=0)
        self._sequence += 1
        message = plan_message(
            sensor_frame,
            plan,
            self.config.plan,
            self._instruction,
            self.model_id,
            'torch',
            self.plan_ms,
        )
        odometry = odometry_message(frame.ego, stamp)
        status = all_inputs_ok(stamp, tuple(core.rig.names))
        output, trajectory = self._safety.judge(
            odometry, obstacles_message(frame.obstacles, stamp), status, message, stamp
        )
        _, command = self._safety.control(trajectory, odometry, stamp)
        return DriverOutput(
            command,
            shown_rationale(output, plan.rationale),
            path_in_world(output, trajectory),
            output.state.name,
            tuple(check.rule for check in output.checks if check.verdict),
        )
