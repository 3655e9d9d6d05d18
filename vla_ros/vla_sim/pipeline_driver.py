"""The whole VLA pipeline driving the simulator in lockstep, in one process.

Every simulator step runs the cores the ROS nodes wrap, through the message conversions of those
nodes, in the order of the node graph: the frame's camera images, CameraInfo and odometry into
the sensor-sync core; its SensorFrame into the inference core; the VlaPlan, odometry, obstacles
and sensor status into the safety monitor, stepped once; its trajectory into the tracking
controller; the ControlCommand back to the simulator's actuators. Every core's "now" is the
frame's stamp, so a run is what the launched nodes would do with instant transport and
computation: deterministic, and independent of the machine's speed. The nodes' own parameter
defaults configure the cores, so the driver and a launch run the same settings.

Without trained weights the driver builds an untrained student (seed 0) and says so: its plans
are noise, which the safety monitor is there to refuse.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import time
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import numpy as np
import torch
from nav_msgs.msg import Odometry
from sensor_msgs.msg import Image
from vla_msgs.msg import (
    Instruction,
    SensorFrame,
    SensorStatus,
    Trajectory,
    VlaPlan,
)

from vla_model.artifacts import load_weights, verify
from vla_model.backends import Backend, select_backend
from vla_model.config import ModelConfig
from vla_model.export import export_onnx
from vla_model.instruction_encoder import InstructionEncoder
from vla_model.network import VlaNet
from vla_perception import sensor_sync_node
from vla_perception.rig import CameraSpec, RigConfig
from vla_perception.sensor_sync import SensorSyncCore, SyncedFrame
from vla_perception.sensor_sync_node import (
    sensor_frame_message,
    sensor_status_message,
    sync_config,
)
from vla_planning import vla_inference_node
from vla_planning.inference_core import InferenceCore, InvalidModelOutputError
from vla_planning.map_prior import MapPriorBuffer
from vla_planning.safety_monitor import MonitorOutput
from vla_planning.tracking_controller import Command
from vla_planning.vla_inference_node import model_id, plan_message, planning_input
from vla_ros.parameters import parameter_defaults
from vla_sim.evaluation import DriverOutput
from vla_sim.safety_loop import SafetyLoop, path_in_world, shown_rationale
from vla_sim.sim_messages import (
    camera_info_message,
    grid_messages,
    image_message,
    instruction_message,
    obstacles_message,
    odometry_message,
)
from vla_sim.simulation import SimFrame, SimulationCore

LOG = logging.getLogger(__name__)
STAGES = ('sync', 'inference', 'safety', 'control')
"""The stages whose wall time `PipelineDriver.stage_ms` reports, in pipeline order."""


@dataclass(frozen=True)
class StepTrace:
    """What each stage of the last step produced: the messages the nodes would have published."""

    sensor_status: SensorStatus | None  # None when the sync core emitted no frame this step
    plan: VlaPlan | None  # None without a frame, or when the model's output was refused
    monitor: MonitorOutput
    trajectory: Trajectory  # what the safety monitor published
    command: Command


def default_cache_dir() -> Path:
    """Where ONNX exports are kept between runs: $XDG_CACHE_HOME/vla_ros/onnx."""
    return Path(os.environ.get('XDG_CACHE_HOME') or Path.home() / '.cache') / 'vla_ros' / 'onnx'


def untrained_student() -> VlaNet:
    """Return the default student with its seed-0 initial weights, leaving torch's RNG alone."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return VlaNet(ModelConfig()).eval()


def weights_digest(model: VlaNet) -> str:
    """SHA-256 of a model's configuration and weights: names its export in the cache."""
    digest = hashlib.sha256(model.config.to_json().encode())
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().contiguous().numpy().tobytes())
    return digest.hexdigest()


def cached_onnx(model: VlaNet, cache_dir: Path) -> Path:
    """Return the ONNX export of `model`, exporting it (5-20 s on a CPU) only the first time.

    The export is written beside its final name and renamed once checked, so a concurrent or
    interrupted run never leaves a partial file under the name that is reused.
    """
    path = cache_dir / f'{model.config.name}-{weights_digest(model)[:16]}.onnx'
    if not path.is_file():
        LOG.info('exporting the model to %s (once per set of weights)', path)
        partial = export_onnx(model, path.with_name(f'{path.stem}.{os.getpid()}.partial.onnx'))
        partial.replace(path)
    return path


@functools.cache
def shared_instruction_encoder() -> InstructionEncoder:
    """One encoder per process: loading it takes seconds, and episodes follow one another."""
    return InstructionEncoder()


class PipelineDriver:
    """Drive a SimulationCore with the VLA stack: sensor sync, model, safety monitor, control.

    Construct once (loading and exporting the model is the slow part); `reset` starts each
    episode with fresh cores, as relaunched nodes would be.
    """

    def __init__(
        self,
        rig: RigConfig,
        *,
        weights: Path | None = None,
        weights_sha256: str | None = None,
        backend: str = 'onnxruntime',
        cache_dir: Path | None = None,
        enforce: bool = True,
        map_prior: bool = True,
        name: str = 'pipeline',
    ) -> None:
        """Load the model and build its backend.

        `weights`: a safetensors file, refused unless its SHA-256 is `weights_sha256` when that
        is given; None: the untrained student. `backend`: one of vla_model.backends.BACKENDS;
        all but torch run the ONNX export, made once per set of weights into `cache_dir`
        (default_cache_dir() when None). `enforce` False runs the safety monitor log-only
        (its `enforce` parameter): the model drives on its own, the monitor only reports.
        `map_prior` False leaves the simulator's map layers out: the model drives map-free.
        `name`: what episode logs and recorded data call this driver ('student' where the
        camera student's states are recorded, vla_sim.camera_data).
        """
        self.name = name
        if weights is None:
            LOG.warning(
                'no weights given: driving an untrained student (seed 0); '
                'untrained model: expect the safety monitor to stop the car'
            )
            model = untrained_student()
            self.model_id = f'{model.config.name}@untrained-seed0'
        else:
            sha256 = verify(weights, weights_sha256)
            model = load_weights(weights, sha256)
            self.model_id = model_id(model.config, sha256)
        if len(rig.cameras) != model.config.num_cameras:
            raise ValueError(
                f'the rig has {len(rig.cameras)} cameras, the model takes '
                f'{model.config.num_cameras}'
            )
        self.rig = rig
        self.model_config = model.config
        self.enforce = enforce
        self.use_map_prior = map_prior
        cache = cache_dir or default_cache_dir()
        onnx_path = None if backend == 'torch' else cached_onnx(model, cache)
        self.backend: Backend = select_backend(backend, model, onnx_path, cache)
        self.stage_ms: dict[str, float] = dict.fromkeys(STAGES, 0.0)
        self.last: StepTrace | None = None
        self.invalid_outputs = 0  # frames whose model output was NaN or infinite: no plan
        self._sync: SensorSyncCore | None = None

    def reset(self, core: SimulationCore) -> None:
        """Start an episode: new cores, the episode's instruction, no history."""
        if core.rig.names != self.rig.names:
            raise ValueError(
                f'the episode renders {core.rig.names}, the driver has {self.rig.names}'
            )
        if not core.config.render:
            raise ValueError('the pipeline drives from camera images: use SimConfig(render=True)')
        self.close()
        self._sync = SensorSyncCore(
            self.rig, sync_config(self.rig, parameter_defaults(sensor_sync_node.PARAMETERS))
        )
        inference = parameter_defaults(vla_inference_node.PARAMETERS)
        self._inference = InferenceCore.from_parameters(
            self.model_config, self.backend, shared_instruction_encoder().encode, inference
        )
        self._instruction: Instruction = instruction_message(
            core.instruction, core.stamp_ns, core.seed
        )
        self._inference.set_instruction(self._instruction.text, core.stamp_ns)
        self._previous_speed: tuple[int, float] | None = None
        self._map_priors = MapPriorBuffer(self.model_config, inference['map_prior_max_offset_s'])
        self._map_grid = core.bev_grid
        self._rationale = ''
        self._neural_map: dict[str, np.ndarray] | None = None
        self._safety = SafetyLoop(self.enforce)
        self.last = None
        self.invalid_outputs = 0

    def close(self) -> None:
        """Stop the sensor-sync core's preprocessing threads."""
        if self._sync is not None:
            self._sync.close()
            self._sync = None

    def drive(self, core: SimulationCore, frame: SimFrame) -> DriverOutput:
        """Run the stack once on `frame` and return the command for the next period."""
        stamp = frame.stamp_ns
        # What the simulator bridge publishes: its cost is the simulator's, not a stage's.
        images = [
            (spec, image_message(frame.images[spec.name], stamp, spec.frame_id))
            for spec in self.rig.cameras
            if spec.name in frame.images
        ]
        odometry = odometry_message(frame.ego, stamp)
        obstacles = obstacles_message(frame.obstacles, stamp)
        map_layers = (
            grid_messages(frame.map_prior, self._map_grid, stamp) if self.use_map_prior else {}
        )

        start = time.perf_counter()
        synced_frame = self._synchronise(images, odometry, stamp)
        sensor_frame = None if synced_frame is None else sensor_frame_message(synced_frame)
        status = None if synced_frame is None else sensor_status_message(synced_frame)
        synced = time.perf_counter()
        for layer, message in map_layers.items():  # the inference node's map-layer callbacks
            self._map_priors.add(layer, message)
        plan = None if sensor_frame is None else self._plan(sensor_frame, start)
        planned = time.perf_counter()
        output, trajectory = self._safety.judge(odometry, obstacles, status, plan, stamp)
        judged = time.perf_counter()
        command, vehicle_command = self._safety.control(trajectory, odometry, stamp)
        done = time.perf_counter()

        marks = (start, synced, planned, judged, done)
        self.stage_ms = {
            stage: (end - begin) * 1e3
            for stage, (begin, end) in zip(STAGES, pairwise(marks), strict=True)
        }
        self.last = StepTrace(status, plan, output, trajectory, command)
        if plan is not None:
            self._rationale = plan.rationale
        return DriverOutput(
            vehicle_command,
            shown_rationale(output, self._rationale),
            path_in_world(output, trajectory),
            output.state.name,
            tuple(check.rule for check in output.checks if check.verdict),
            self._neural_map,
        )

    def _synchronise(
        self, images: list[tuple[CameraSpec, Image]], odometry: Odometry, stamp: int
    ) -> SyncedFrame | None:
        """Feed the sync core as its node's callbacks do; step it once, at the frame stamp."""
        for spec, message in images:
            self._sync.on_camera_info(spec.name, camera_info_message(spec, stamp))
            self._sync.on_image(spec.name, message, stamp)
        self._sync.on_odometry(odometry)
        return self._sync.step(stamp)

    def _plan(self, sensor_frame: SensorFrame, start: float) -> VlaPlan | None:
        """Plan the frame as vla_inference_node does; None when the model's output is refused."""
        frame = planning_input(sensor_frame, self.model_config, self._previous_speed)
        self._previous_speed = (frame.stamp_ns, frame.ego_state[0])
        try:
            plan = self._inference.step(frame, self._map_priors.at(frame.stamp_ns))
        except InvalidModelOutputError as error:
            self.invalid_outputs += 1
            LOG.error('%s', error)
            return None
        self._neural_map = dict(
            zip(self.model_config.bev_classes, plan.bev_probabilities, strict=True)
        )
        return plan_message(
            sensor_frame,
            plan,
            self.model_config,
            self._instruction,
            self.model_id,
            self.backend.name,
            (time.perf_counter() - start) * 1e3,
        )
