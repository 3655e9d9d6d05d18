"""The VLA pipeline driving the simulator in lockstep, in one process, through the nodes' cores.

One 40-step highway episode with the untrained student on ONNX Runtime is shared by the tests
that read it; the others run a few steps of their own.
"""

import dataclasses
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pytest

from vla_model.artifacts import save_weights
from vla_model.config import RATIONALES
from vla_model.trajectory_messages import trajectory_arrays
from vla_perception.health import Health
from vla_perception.rig import RigConfig
from vla_perception.synchronizer import stamp_to_ns
from vla_planning.safety_monitor import Origin
from vla_planning.safety_rules import Verdict
from vla_planning.safety_states import SafetyState
from vla_planning.tracking_controller import ControllerConfig
from vla_sim.evaluation import DriverOutput, run_episode
from vla_sim.pipeline_driver import STAGES, PipelineDriver, StepTrace, untrained_student
from vla_sim.simulation import SimConfig, SimFrame, SimulationCore
from vla_sim.world import ACCELERATION_LIMITS_MPS2, MAX_STEERING_TIRE_ANGLE_RAD

RENDER = SimConfig(render=True)


@dataclass(frozen=True)
class Step:
    """One step as the driver saw and answered it."""

    frame: SimFrame
    output: DriverOutput
    trace: StepTrace
    stage_ms: dict[str, float]


class Recorder:
    """Drive with a PipelineDriver and keep every step; optionally kill one camera mid-run."""

    name = 'pipeline'

    def __init__(self, driver: PipelineDriver, dead_camera: str = '', dies_at_step: int = 0):
        self.driver = driver
        self.dead_camera, self.dies_at_step = dead_camera, dies_at_step
        self.steps: list[Step] = []

    def reset(self, core: SimulationCore) -> None:
        """Start the episode."""
        self.driver.reset(core)

    def drive(self, core: SimulationCore, frame: SimFrame) -> DriverOutput:
        """Drive one step (without the dead camera's image once it has died) and keep it."""
        if self.dead_camera and len(self.steps) >= self.dies_at_step:
            images = {k: v for k, v in frame.images.items() if k != self.dead_camera}
            frame = dataclasses.replace(frame, images=images)
        output = self.driver.drive(core, frame)
        self.steps.append(Step(frame, output, self.driver.last, dict(self.driver.stage_ms)))
        return output


def drive(driver: PipelineDriver, rig: RigConfig, steps: int, **recorder) -> list[Step]:
    """Run seed 0 of the highway scenario for `steps` steps and return them."""
    recording = Recorder(driver, **recorder)
    run_episode('highway', 0, recording, rig, sim_config=RENDER, max_steps=steps)
    assert len(recording.steps) == steps
    return recording.steps


@pytest.fixture(scope='module')
def driver(rig: RigConfig, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PipelineDriver]:
    """Build the untrained student on ONNX Runtime, exported once for the module."""
    pipeline = PipelineDriver(rig, cache_dir=tmp_path_factory.mktemp('onnx'))
    yield pipeline
    pipeline.close()


@pytest.fixture(scope='module')
def highway(driver: PipelineDriver, rig: RigConfig) -> list[Step]:
    """Forty steps (4 s) of highway seed 0."""
    return drive(driver, rig, 40)


def test_every_command_is_finite_and_within_the_limits(highway: list[Step]):
    controller = ControllerConfig()
    for step in highway:
        steering = step.output.command.steering_tire_angle_rad
        acceleration = step.output.command.acceleration_mps2
        assert math.isfinite(steering) and math.isfinite(acceleration)
        assert (
            abs(steering) <= controller.max_steering_tire_angle_rad < MAX_STEERING_TIRE_ANGLE_RAD
        )
        assert (
            ACCELERATION_LIMITS_MPS2[0]
            < controller.emergency_acceleration_mps2
            <= acceleration
            <= controller.max_acceleration_mps2
        )


def test_every_stage_runs_every_step_at_the_frame_stamp(highway: list[Step], driver):
    for step in highway:
        stamp = step.frame.stamp_ns
        status, plan = step.trace.sensor_status, step.trace.plan
        assert status is not None and stamp_to_ns(status.header.stamp) == stamp
        assert all(camera.health == Health.OK for camera in status.cameras)
        assert plan is not None and stamp_to_ns(plan.header.stamp) == stamp
        assert plan.model_id == driver.model_id == 'vla-student@untrained-seed0'
        assert plan.backend == 'onnxruntime'
        assert stamp_to_ns(step.trace.trajectory.header.stamp) == stamp
        assert set(step.stage_ms) == set(STAGES)
        assert all(0.0 < ms < 10_000.0 for ms in step.stage_ms.values())


def test_the_monitor_state_is_reported_every_step_and_explains_itself(highway: list[Step]):
    for step in highway:
        monitor, output = step.trace.monitor, step.output
        assert output.safety_state == monitor.state.name
        assert output.safety_state in SafetyState.__members__
        assert output.failed_rules == tuple(c.rule for c in monitor.checks if c.verdict)
        if monitor.state == SafetyState.NOMINAL:  # reached only on a cycle where every rule passed
            assert all(check.verdict == Verdict.PASS for check in monitor.checks)
        if monitor.origin in (Origin.MODEL, Origin.MODEL_SPEED_CLAMPED):
            assert output.rationale in RATIONALES
        else:  # the monitor overrode the model: the rationale says why, by rule
            failing = [check.rule for check in monitor.checks if check.verdict]
            assert output.rationale.startswith(monitor.origin.name.lower().replace('_', ' '))
            assert failing and all(rule in output.rationale for rule in failing)
    plan_checks_pass = all(
        check.verdict == Verdict.PASS
        for step in highway
        for check in step.trace.monitor.checks
        if check.rule.startswith(('sanity.', 'kinematics.', 'model.'))
    )
    nominal_throughout = all(step.output.safety_state == 'NOMINAL' for step in highway)
    assert plan_checks_pass or not nominal_throughout, 'a failing plan was driven NOMINAL'


def test_the_published_trajectory_is_in_odom_and_starts_at_the_ego(highway: list[Step]):
    for step in highway:
        trajectory = step.trace.trajectory
        assert trajectory.header.frame_id == 'odom'
        _, poses, speeds = trajectory_arrays(trajectory)
        np.testing.assert_array_equal(step.output.path_world, poses[:, :2])
        pose = step.frame.ego.pose
        assert math.hypot(poses[0, 0] - pose.x, poses[0, 1] - pose.y) < 1.0
        assert np.all(speeds >= 0.0)


def test_the_same_seed_gives_the_same_commands(highway: list[Step], driver, rig):
    again = drive(driver, rig, 12)
    for first, second in zip(highway, again, strict=False):
        assert first.output.command == second.output.command
        assert first.output.rationale == second.output.rationale
        assert first.trace.plan.trajectory == second.trace.plan.trajectory


def test_a_dead_camera_is_marked_in_the_sensor_status_and_degrades_the_monitor(driver, rig):
    steps = drive(driver, rig, 12, dead_camera='front', dies_at_step=3)
    front = rig.names.index('front')
    healths = [
        s.trace.sensor_status.cameras[front].health if s.trace.sensor_status else None
        for s in steps
    ]
    assert healths[:3] == [Health.OK] * 3
    # The sync core waits for a live camera up to its deadline (one period here), then sends
    # the frame with the camera's last image (STALE), until the camera is silent for longer
    # than the stale timeout (0.5 s): MISSING, and frames no longer wait for it.
    assert healths[3] is None and healths[4] == Health.STALE
    assert healths[-1] == Health.MISSING
    for step in steps[4:]:
        cameras = next(c for c in step.trace.monitor.checks if c.rule == 'sensors.cameras')
        assert cameras.verdict == Verdict.DEGRADE, cameras.reason
        assert step.output.safety_state != 'NOMINAL'
    assert all(step.trace.plan for step, health in zip(steps, healths, strict=True) if health)


def test_weights_on_the_torch_backend_plan_as_the_onnx_export(highway, rig, tmp_path, caplog):
    weights = tmp_path / 'student.safetensors'
    sha256 = save_weights(untrained_student(), weights)
    torch_driver = PipelineDriver(rig, weights=weights, weights_sha256=sha256, backend='torch')
    assert 'untrained model' not in caplog.text
    assert torch_driver.model_id == f'vla-student@sha256:{sha256[:12]}'
    (step,) = drive(torch_driver, rig, 1)
    torch_driver.close()
    assert step.trace.plan.backend == 'pytorch'
    _, torch_poses, _ = trajectory_arrays(step.trace.plan.trajectory)
    _, onnx_poses, _ = trajectory_arrays(highway[0].trace.plan.trajectory)
    np.testing.assert_allclose(torch_poses, onnx_poses, atol=1e-3)


def test_the_untrained_model_is_announced(rig, caplog):
    PipelineDriver(rig, backend='torch').close()
    assert 'untrained model: expect the safety monitor to stop the car' in caplog.text


def test_a_log_only_monitor_lets_the_untrained_model_drive(highway, rig, tmp_path):
    log_only = PipelineDriver(rig, cache_dir=tmp_path, backend='torch', enforce=False)
    try:
        steps = drive(log_only, rig, 20)
    finally:
        log_only.close()

    def model_driven(steps: list[Step]) -> int:
        return sum(step.trace.monitor.origin == Origin.MODEL for step in steps)

    overruled = [
        step
        for step in steps
        if step.trace.monitor.state != SafetyState.NOMINAL
        and step.trace.monitor.origin == Origin.MODEL
    ]
    assert overruled, 'the monitor never reported a rule it did not enforce'
    assert model_driven(steps) > model_driven(highway[:20])
