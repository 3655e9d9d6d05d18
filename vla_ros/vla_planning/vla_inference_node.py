"""vla_inference_node: SensorFrame and Instruction in; VlaPlan and the BEV neural map out.

A lifecycle node over InferenceCore. Configure loads the weights (refused unless their SHA-256
equals the pinned one), builds the backend and warms it up; activate starts planning. It never
queues behind: it plans in the frame's callback and its subscription keeps only the newest frame
(depth 1) while it plans, so the frames it had to skip show as gaps in the sequence numbers.
Frames are taken serialized and read with numpy views of their images (vla_ros.raw_messages):
rclpy's conversion of the 2 MB SensorFrame into Python objects took 1.3 ms of each frame. The
plan is published as the bytes plan_bytes writes (the fields of plan_message).
Instructions are embedded on a worker thread (InstructionIntake: newest wins, text the encoder
cannot read refused), so frames never wait for the encoder.
"""

import array
import math
import threading
from functools import partial
from pathlib import Path

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import OccupancyGrid
from rclpy.lifecycle import (
    LifecycleNode,
    LifecyclePublisher,
    LifecycleState,
    TransitionCallbackReturn,
)
from rclpy.qos import QoSProfile
from std_msgs.msg import Header
from vla_msgs.msg import (
    InputStatus,
    Instruction,
    SensorFrame,
    Trajectory,
    VlaPlan,
)

from vla_model.artifacts import ArtifactError, load_weights, verify
from vla_model.backends import BACKENDS, Backend, select_backend
from vla_model.bev_geometry import CameraGeometry, rotation_from_quaternion
from vla_model.config import MAP_PRIOR_LAYERS, ModelConfig
from vla_model.instruction_encoder import (
    MAX_INSTRUCTION_CHARS,
    InstructionEncoder,
    check_instruction,
)
from vla_model.model_inputs import FrameInput, ego_acceleration
from vla_model.network import VlaNet
from vla_model.trajectory_messages import trajectory_message
from vla_perception.odometry import yaw_of
from vla_perception.synchronizer import stamp_to_ns
from vla_planning.inference_core import (
    InferenceCore,
    InvalidModelOutputError,
    Plan,
    UnplannableFrameError,
    path_kinematics,
)
from vla_planning.instruction_intake import (
    GivenInstruction,
    InstructionInForce,
    InstructionIntake,
)
from vla_planning.map_prior import MapPriorBuffer
from vla_planning.plan_bytes import plan_bytes
from vla_planning.plan_speeds import PlanAccelerationLimits
from vla_ros.diagnostics import ERROR, OK, WARN, diagnostic_array, diagnostic_status
from vla_ros.large_buffers import keep_large_buffers
from vla_ros.node_main import freeze_startup_objects, run_node
from vla_ros.parameters import ParameterSpec, declare_parameters
from vla_ros.qos import LATCHED, RELIABLE, SENSOR_DATA
from vla_ros.raw_messages import MalformedMessage, read_message

USABLE = (InputStatus.HEALTH_OK, InputStatus.HEALTH_STALE)
PARAMETERS = [
    ParameterSpec('weights_path', '', 'Model weights (safetensors).'),
    ParameterSpec('weights_sha256', '', 'SHA-256 the weights file must have; required.'),
    ParameterSpec(
        'onnx_path', '', 'ONNX export of the same weights, for the onnxruntime backend.'
    ),
    ParameterSpec('onnx_sha256', '', 'SHA-256 the ONNX file must have; required with onnx_path.'),
    ParameterSpec(
        'backend',
        'auto',
        f'One of {", ".join(BACKENDS)}; auto: onnxruntime when onnx_path is set, else torch.',
    ),
    ParameterSpec(
        'engine_cache_dir', '', 'TensorRT engines and timing cache; empty: beside the ONNX file.'
    ),
    ParameterSpec('precision', 'fp16', 'TensorRT precision: fp32, fp16 or int8.'),
    ParameterSpec(
        'onnxruntime_threads',
        0,
        "ONNX Runtime's intra-op threads; 0: its default, one per physical core.",
        0,
        256,
    ),
    ParameterSpec(
        'max_frame_gap_s', 0.5, 'Frames further apart reset the temporal state, s.', 0.05, 10.0
    ),
    ParameterSpec(
        'plan_max_acceleration_mps2',
        PlanAccelerationLimits.max_acceleration_mps2,
        'The published plan is re-timed along its path to accelerate at most this, m/s^2 '
        "(keep it under the safety monitor's limits.max_acceleration_mps2).",
        0.1,
        5.0,
    ),
    ParameterSpec(
        'plan_max_deceleration_mps2',
        PlanAccelerationLimits.max_deceleration_mps2,
        'The published plan is re-timed along its path to brake at most this, m/s^2, positive '
        "(keep it under the safety monitor's -limits.min_acceleration_mps2).",
        0.1,
        10.0,
    ),
    ParameterSpec(
        'map_prior_topic_prefix',
        '/map/prior',
        'OccupancyGrid layers <prefix>/<layer> in base_link (lane_centreline, drivable, '
        'route_lanes; a model takes the first map_prior_channels of them) used as the map '
        'prior; empty: always plan map-free.',
    ),
    ParameterSpec(
        'map_prior_max_offset_s',
        0.05,
        'A frame uses a complete map prior stamped at most this far from it, s.',
        0.0,
        1.0,
    ),
    ParameterSpec(
        'autostart', False, 'Configure and activate at start, without a lifecycle manager.'
    ),
]


UNUSABLE_ODOMETRY = {InputStatus.HEALTH_MISSING: 'missing', InputStatus.HEALTH_INVALID: 'invalid'}
"""Odometry health the sync node gives a frame it has no usable ego state for (zeros in it)."""


def odometry_problem(message: SensorFrame) -> str | None:
    """Return why a frame's odometry cannot be planned on, or None when it can.

    The model reads the ego's speed, yaw rate and motion from it: zeros (missing, invalid, or
    older than the sync node's odometry_timeout_s) or NaN in their place make it plan for a car
    that is not there.
    """
    health = message.odometry_status.health
    if health in UNUSABLE_ODOMETRY:
        return f'odometry {UNUSABLE_ODOMETRY[health]}'
    pose, twist = message.odometry.pose.pose, message.odometry.twist.twist
    q = pose.orientation
    values = (
        pose.position.x,
        pose.position.y,
        q.x,
        q.y,
        q.z,
        q.w,
        twist.linear.x,
        twist.angular.z,
    )
    if not all(math.isfinite(value) for value in values):
        return 'odometry not finite'
    return None


def planning_input(
    message: SensorFrame, config: ModelConfig, previous: tuple[int, float] | None
) -> FrameInput:
    """Convert a SensorFrame for the model of `config`.

    Cameras without a usable, model-sized image are marked invalid. `previous` is (stamp ns,
    speed m/s) of the frame planned before, or None: the model's acceleration input is the
    speed's change since then (0 at the first frame). `synced_frame_input` is the same
    conversion for the sync core's own frames (training data, replay); a test keeps them equal.
    """
    height, width = config.image_height, config.image_width
    cameras, images, valid = [], [], []
    for camera in message.cameras:
        image, info = camera.image, camera.camera_info
        k = np.asarray(info.k, dtype=np.float64).reshape(3, 3)
        usable = (
            camera.status.health in USABLE
            and (image.height, image.width) == (height, width)
            and image.encoding == 'rgb8'
            and k[2, 2] == 1.0
        )
        images.append(
            np.frombuffer(image.data, np.uint8).reshape(height, width, 3)
            if usable
            else np.zeros((height, width, 3), np.uint8)
        )
        valid.append(usable)
        q, t = camera.extrinsic.rotation, camera.extrinsic.translation
        cameras.append(
            CameraGeometry(
                k if usable else np.diag([1.0, 1.0, 1.0]),
                rotation_from_quaternion((q.x, q.y, q.z, q.w)),
                np.array([t.x, t.y, t.z]),
            )
        )
    pose, twist = message.odometry.pose.pose, message.odometry.twist.twist
    stamp_ns = stamp_to_ns(message.header.stamp)
    speed = twist.linear.x
    return FrameInput(
        stamp_ns=stamp_ns,
        epoch=message.epoch,
        images=np.stack(images),
        camera_valid=np.array(valid),
        cameras=tuple(cameras),
        pose=(pose.position.x, pose.position.y, yaw_of(pose.orientation)),
        ego_state=(speed, twist.angular.z, ego_acceleration(speed, stamp_ns, previous)),
    )


def model_id(config: ModelConfig, weights_sha256: str) -> str:
    """Name a model in plans and logs by its configuration and the hash of its weights."""
    return f'{config.name}@sha256:{weights_sha256[:12]}'


def candidate_message(
    points: np.ndarray,
    times_s: np.ndarray,
    step_s: float,
    header,
    origin: int = Trajectory.ORIGIN_MODEL,
) -> Trajectory:
    """Build a Trajectory (base_link at the frame stamp) with kinematics derived from the path."""
    speeds, accelerations, yaw_rates = path_kinematics(points, step_s)
    return trajectory_message(header, origin, times_s, points, speeds, accelerations, yaw_rates)


def plan_message(
    frame: SensorFrame,
    plan: Plan,
    config: ModelConfig,
    instruction: Instruction,
    model: str,
    backend: str,
    input_to_output_ms: float,
) -> VlaPlan:
    """Build the VlaPlan of a frame: every candidate a Trajectory in base_link at its stamp."""
    header = frame.header
    message = VlaPlan(header=header, frame_sequence=frame.sequence, frame_epoch=frame.epoch)
    message.candidates = [
        candidate_message(c, plan.times_s, config.step_s, header) for c in plan.candidates
    ]
    # The selected candidate within the plan's acceleration limits.
    message.trajectory = trajectory_message(
        header, Trajectory.ORIGIN_MODEL, *plan.published_arrays()
    )
    message.candidate_scores = plan.probabilities.astype(np.float32).tolist()
    message.selected_index, message.confidence = plan.selected, plan.confidence
    message.rationale_class, message.rationale = plan.rationale_class, plan.rationale
    message.instruction_id, message.instruction_text = instruction.id, instruction.text
    message.model_id, message.backend = model, backend
    message.preprocess_ms, message.inference_ms = plan.preprocess_ms, plan.inference_ms
    message.postprocess_ms = plan.postprocess_ms
    message.input_to_output_ms = input_to_output_ms
    return message


def load_model(params: dict[str, object]) -> tuple[VlaNet, Backend]:
    """Load the weights (and ONNX export) the node's parameters name, each checked by its hash.

    Raises ArtifactError or ValueError naming the file or parameter at fault. The replay tool
    loads through this too, so it runs exactly the model a node with these parameters would.
    """
    weights, pinned = params['weights_path'], params['weights_sha256']
    if not weights or not pinned:
        raise ValueError(
            'weights_path and weights_sha256 must both be set: model files '
            'are trusted by hash only'
        )
    model = load_weights(Path(weights), pinned)
    onnx_path = None
    if params['onnx_path']:
        if not params['onnx_sha256']:
            raise ValueError('onnx_sha256 must be set with onnx_path')
        onnx_path = Path(params['onnx_path'])
        verify(onnx_path, params['onnx_sha256'])
    cache_dir = Path(params['engine_cache_dir']) if params['engine_cache_dir'] else None
    backend = select_backend(
        params['backend'],
        model,
        onnx_path,
        cache_dir,
        params['precision'],
        params['onnxruntime_threads'],
    )
    return model, backend


def neural_map_message(header: Header, plan: Plan, config: ModelConfig) -> OccupancyGrid:
    """Non-drivable probability as occupancy (0-100) in base_link; x along the grid width."""
    drivable = plan.bev_probabilities[config.bev_classes.index('drivable')]
    grid = OccupancyGrid(header=header)
    rows, cols = config.bev_size
    grid.info.resolution = config.bev_cell_m
    grid.info.width, grid.info.height = rows, cols
    grid.info.origin.position.x, grid.info.origin.position.y = (
        config.bev_x_range[0],
        config.bev_y_range[0],
    )
    grid.info.origin.orientation.w = 1.0
    # An int8 array.array is taken as is; a list is converted item by item (0.4-0.7 ms a map).
    grid.data = array.array('b', np.round(100.0 * (1.0 - drivable.T)).astype(np.int8).tobytes())
    return grid


class VlaInferenceNode(LifecycleNode):
    """Plan with the driving model for every SensorFrame, skipping frames rather than lagging."""

    def __init__(self, **kwargs) -> None:
        super().__init__('vla_inference_node', **kwargs)
        keep_large_buffers()  # a 2 MB frame a frame, without fresh pages each time
        self.params = declare_parameters(self, PARAMETERS)
        self.core: InferenceCore | None = None
        self.model_id = ''
        self._last_sequence: tuple[int, int] | None = None
        self._previous_speed: tuple[int, float] | None = None
        self._instruction = Instruction()  # in force: the plans carry its id and text
        self._instruction_check = check_instruction('')
        self._encoder = InstructionEncoder()
        self._intake = InstructionIntake(
            self._encoder.encode, self._on_understood, self._on_refused
        )
        self._latest_refused = ''  # why the newest instruction was refused; '' if it was not
        self._stop_intake = threading.Event()
        self._intake_worker = threading.Thread(
            target=self._intake.serve, args=(self._stop_intake,), daemon=True
        )
        self._intake_worker.start()
        self._active = False
        self.frames = self.skipped = self.invalid_outputs = self.frames_without_odometry = 0
        self.frames_malformed = self.frames_unplannable = 0
        self.last_frame_problem = 'none'
        self.map_priors: MapPriorBuffer | None = None
        self.frames_with_map_prior = self.map_layers_rejected = 0
        self._latencies_ms: list[float] = []
        self.configure_error = ''
        self.plan_publisher: LifecyclePublisher | None = None
        self.map_publisher: LifecyclePublisher | None = None
        self.diagnostics_publisher = self.create_publisher(
            DiagnosticArray, '/diagnostics', RELIABLE
        )
        self.create_subscription(
            SensorFrame,
            'vla/sensor_frame',
            self._on_frame,
            QoSProfile(depth=1, reliability=SENSOR_DATA.reliability),
            raw=True,
        )
        self.create_subscription(Instruction, 'vla/instruction', self._on_instruction, LATCHED)
        prefix = self.params['map_prior_topic_prefix'].rstrip('/')
        for layer in MAP_PRIOR_LAYERS if prefix else ():
            self.create_subscription(
                OccupancyGrid, f'{prefix}/{layer}', partial(self._on_map_layer, layer), RELIABLE
            )
        self.create_timer(1.0, self._publish_diagnostics)
        if self.params['autostart']:
            self.trigger_configure()
            if self.core is None:
                raise ValueError(f'autostart: cannot configure: {self.configure_error}')
            self.trigger_activate()

    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Load and check the model, then offer the outputs; a problem fails configuration.

        The plan and map publishers appear only once a model is loaded, so a publisher on
        vla/plan tells the graph (the simulator bridge in lockstep) that the planner is ready.
        """
        try:
            self.core = self._load()
        except (ArtifactError, ValueError, RuntimeError) as error:
            self.configure_error = str(error)
            self.get_logger().error(f'cannot configure: {error}')
            return TransitionCallbackReturn.FAILURE
        self.plan_publisher = self.create_lifecycle_publisher(VlaPlan, 'vla/plan', RELIABLE)
        self.map_publisher = self.create_lifecycle_publisher(
            OccupancyGrid, 'vla/neural_map', RELIABLE
        )
        freeze_startup_objects()  # the model and its runtime: never walked by the collector
        self.get_logger().info(f'model {self.model_id} on {self.core.backend.name} ready')
        return super().on_configure(state)

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Start planning."""
        self._active = True
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Stop planning; the model stays loaded."""
        self._active = False
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        """Release the model and withdraw the outputs."""
        self.core = self.map_priors = None
        for publisher in (self.plan_publisher, self.map_publisher):
            self.destroy_lifecycle_publisher(publisher)
        self.plan_publisher = self.map_publisher = None
        return super().on_cleanup(state)

    def _load(self) -> InferenceCore:
        model, backend = load_model(self.params)
        self.model_id = model_id(model.config, self.params['weights_sha256'])
        core = InferenceCore.from_parameters(
            model.config, backend, self._encoder.encode, self.params
        )
        in_force = self._intake.in_force
        if in_force is not None:
            core.use_instruction(in_force.check.text, in_force.embedding, in_force.given.given_ns)
        self.map_priors = MapPriorBuffer(model.config, self.params['map_prior_max_offset_s'])
        return core

    def _on_map_layer(self, layer: str, message: OccupancyGrid) -> None:
        if self.map_priors is None:
            return
        try:
            self.map_priors.add(layer, message)
        except ValueError as error:
            self.map_layers_rejected += 1
            self.get_logger().warning(f'map prior refused: {error}', throttle_duration_sec=5.0)

    def _on_instruction(self, message: Instruction) -> None:
        """Hand the instruction to the intake's worker; warn now about what cleaning changes."""
        check = check_instruction(message.text)
        problems = [
            name
            for name, flagged in (
                ('empty: the default instruction is used', check.empty),
                (f'longer than {MAX_INSTRUCTION_CHARS} characters: truncated', check.truncated),
                ('carrying control characters: removed', check.control_characters),
            )
            if flagged
        ]
        if problems:
            self.get_logger().warning(f'instruction {message.id!r} is {"; ".join(problems)}')
        given_ns = stamp_to_ns(message.header.stamp)
        self._intake.submit(GivenInstruction(message.id, message.text, given_ns))

    def _on_understood(self, in_force: InstructionInForce) -> None:
        """Plan with an instruction the worker embedded, from the next frame on."""
        given, check = in_force.given, in_force.check
        # The text as the model reads it (cleaned, at most MAX_INSTRUCTION_CHARS); empty if none.
        self._instruction = Instruction(id=given.id, text='' if check.empty else check.text)
        self._instruction_check, self._latest_refused = check, ''
        core = self.core
        if core is not None:
            core.use_instruction(in_force.check.text, in_force.embedding, given.given_ns)

    def _on_refused(self, given: GivenInstruction, reason: str) -> None:
        """Keep the instruction in force when the worker refused a new one, and say why."""
        self._latest_refused = reason
        kept = self._instruction.text or 'the default instruction'
        self.get_logger().warning(
            f'instruction {given.id!r} is not understood ({reason}): {kept!r} stays in force'
        )

    def _on_frame(self, raw: bytes) -> None:
        """Plan a frame as soon as it is taken: no queue or poll between arrival and the model.

        Frames that arrive while it plans wait in the subscription (depth 1: the newest wins);
        the gap in sequence numbers counts the ones replaced (and any lost in transport).
        """
        if not self._active or self.core is None:
            return
        try:
            message = read_message(raw, SensorFrame, native={Header})
        except MalformedMessage as error:
            self.frames_malformed += 1
            self.get_logger().warning(f'frame refused: {error}', throttle_duration_sec=5.0)
            return
        config = self.core.config
        if len(message.cameras) != config.num_cameras:
            self.get_logger().warning(
                f'frame has {len(message.cameras)} cameras, the model takes '
                f'{config.num_cameras}: skipped',
                throttle_duration_sec=5.0,
            )
            return
        key = (message.epoch, message.sequence)
        if self._last_sequence is not None and key[0] == self._last_sequence[0]:
            self.skipped += max(0, key[1] - self._last_sequence[1] - 1)
        self._last_sequence = key
        problem = odometry_problem(message)
        if problem is not None:
            self.frames_without_odometry += 1
            self.last_frame_problem = problem
            self.core.forget()
            self._previous_speed = None
            self.get_logger().warning(
                f'frame {message.sequence} not planned: {problem}; the temporal state restarts '
                f'when odometry returns ({self.frames_without_odometry} not planned)',
                throttle_duration_sec=5.0,
            )
            return
        frame = planning_input(message, config, self._previous_speed)
        self._previous_speed = (frame.stamp_ns, frame.ego_state[0])
        map_prior = self.map_priors.at(frame.stamp_ns)
        self.frames_with_map_prior += map_prior is not None
        try:
            plan = self.core.step(frame, map_prior)
        except InvalidModelOutputError as error:
            self.invalid_outputs += 1
            self.get_logger().error(str(error), throttle_duration_sec=5.0)
            return
        except UnplannableFrameError as error:
            self.frames_unplannable += 1
            self.last_frame_problem = str(error)
            self.get_logger().error(
                f'frame {message.sequence} not planned: {error} ({self.frames_unplannable} not '
                'planned)',
                throttle_duration_sec=5.0,
            )
            return
        latency_ms = (self.get_clock().now().nanoseconds - plan.stamp_ns) / 1e6
        self.plan_publisher.publish(
            plan_bytes(
                message,
                plan,
                config,
                self._instruction,
                self.model_id,
                self.core.backend.name,
                latency_ms,
            )
        )
        self.map_publisher.publish(neural_map_message(message.header, plan, config))
        self._latencies_ms.append(plan.preprocess_ms + plan.inference_ms + plan.postprocess_ms)
        self.frames += 1

    def destroy_node(self) -> None:
        """Stop the instruction worker, then the node."""
        self._stop_intake.set()
        self._intake_worker.join(timeout=5.0)
        super().destroy_node()

    def _publish_diagnostics(self) -> None:
        latencies, self._latencies_ms = self._latencies_ms, []
        level = OK if self.core is not None and self._active and not self._latest_refused else WARN
        if self.invalid_outputs or self.frames_unplannable:
            level = ERROR
        values = {
            'model': self.model_id or 'none',
            'active': self._active,
            'backend': self.core.backend.name if self.core else 'none',
            'frames_planned': self.frames,
            'frames_skipped': self.skipped,
            'invalid_outputs': self.invalid_outputs,
            'temporal_resets': self.core.resets if self.core else 0,
            'frames_without_odometry': self.frames_without_odometry,
            'frames_malformed': self.frames_malformed,
            'frames_unplannable': self.frames_unplannable,
            'last_frame_problem': self.last_frame_problem,
            'frames_with_map_prior': self.frames_with_map_prior,
            'map_layers_rejected': self.map_layers_rejected,
            'instruction': self._instruction_check.text[:80],
            'instruction_empty': self._instruction_check.empty,
            'instruction_truncated': self._instruction_check.truncated,
            'instruction_control_characters': self._instruction_check.control_characters,
            'instructions_received': self._intake.received,
            'instructions_superseded': self._intake.superseded,
            'instructions_refused': self._intake.refused,
            'last_instruction_refused': self._intake.last_refused or 'none',
            'newest_instruction_refused': bool(self._latest_refused),
            'latency_ms_mean': float(np.mean(latencies)) if latencies else float('nan'),
            'latency_ms_max': float(np.max(latencies)) if latencies else float('nan'),
        }
        summary = 'planning' if self._active else 'inactive'
        if self._latest_refused:
            summary += f'; the newest instruction is not understood ({self._latest_refused})'
        self.diagnostics_publisher.publish(
            diagnostic_array(
                self.get_clock().now().to_msg(),
                [
                    diagnostic_status(
                        'vla_inference_node: model',
                        'vla_ros',
                        level,
                        summary,
                        values,
                    )
                ],
            )
        )


def main(args: list[str] | None = None) -> None:
    """Run vla_inference_node until shut down."""
    run_node(VlaInferenceNode, 'vla_inference_node', args)


if __name__ == '__main__':
    main()
