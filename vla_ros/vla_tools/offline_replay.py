"""Deterministic offline replay of a bag through the pipeline's cores (openpilot's process replay).

A bag's messages go to the cores in log-time order, through the nodes' own conversions, as the
nodes would take them with instant transport and computation: cameras, CameraInfo and odometry
into the sensor-sync core (OfflineSync ticks its timer on log time), each frame it emits into
the inference core at once, the plan, odometry, obstacles and sensor status into the safety
monitor's MonitorFeed, and the monitor cycled as the node cycles it: on each plan (PlanTrigger),
and on its watchdog period of log time when plans stop. Map-prior layers in
the bag are used as the inference node uses them. Given trajectory_output_node's parameters, the
tracking controller follows the monitor's trajectories on its control period of log time, as
that node's timer does. The monitor can instead judge plans recorded in the bag (`plan_topic`),
so that its outputs do not depend on the model: the regression references
(vla_tools.replay_regression) are made so. Nothing reads a clock,
so the same bag and model give the same plans, trajectories and safety states bit for bit. The
plans' latency fields, the only measured values, are written as 0; the measured latencies are in
the summary instead.

The outputs are the messages the nodes would have published (/vla/sensor_frame,
/vla/sensor_status, /vla/plan, /vla/neural_map, /vla/trajectory, /vla/safety_status and, with the
controller, /vla/control_command), the safety state changes, and the open-loop metrics of the
plans against the logged future (vla_tools.open_loop_eval).
"""

from __future__ import annotations

from collections import Counter
from contextlib import suppress
from dataclasses import dataclass, field

import numpy as np
from vla_msgs.msg import Instruction

from vla_model.backends import Backend
from vla_model.config import MAP_PRIOR_LAYERS, ModelConfig
from vla_model.driving_labels import PoseTrack, future_trajectory
from vla_model.instruction_encoder import InstructionEncoder, check_instruction
from vla_perception.odometry import yaw_of
from vla_perception.offline_sync import OfflineSync
from vla_perception.rig import RigConfig
from vla_perception.sensor_sync import SensorSyncCore, SyncedFrame
from vla_perception.sensor_sync_node import (
    sensor_frame_message,
    sensor_status_message,
    sync_config,
)
from vla_perception.synchronizer import NS_PER_S, stamp_to_ns
from vla_planning.collision import Obstacles
from vla_planning.inference_core import InferenceCore, InvalidModelOutputError
from vla_planning.instruction_intake import refusal
from vla_planning.map_prior import MapPriorBuffer
from vla_planning.safety_monitor import SafetyMonitor
from vla_planning.safety_monitor_node import (
    MonitorFeed,
    PlanTrigger,
    failing_reasons,
    monitor_config,
    monitor_trajectory_message,
    safety_status_message,
)
from vla_planning.tracking_controller import TrackingController
from vla_planning.trajectory_output_node import (
    ControlFeed,
    control_command_message,
    controller_config,
    gate_limits,
)
from vla_planning.vla_inference_node import neural_map_message, plan_message, planning_input
from vla_ros.log_timer import LogTimer
from vla_ros.stamps import to_time
from vla_ros.topics import CONTROL_COMMAND_TOPIC, INSTRUCTION_TOPIC
from vla_tools.open_loop_eval import FrameScores, score_frame, summarise

OUTPUT_TOPICS = (
    '/vla/sensor_status',
    '/vla/plan',
    '/vla/neural_map',
    '/vla/trajectory',
    '/vla/safety_status',
)


@dataclass(frozen=True)
class Published:
    """A message a node would have published, at the log time it would have."""

    topic: str
    log_time_ns: int
    message: object  # an rclpy message


@dataclass(frozen=True)
class SafetyEvent:
    """The monitor changed state or trajectory origin."""

    log_time_ns: int
    state: str
    origin: str
    reasons: str


@dataclass
class ReplayRecord:
    """What a replay saw besides its messages: for events, metrics and the summary."""

    events: list[SafetyEvent] = field(default_factory=list)
    refused: Counter = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)  # measured: not reproducible
    odometry: list[tuple[int, float, float, float]] = field(default_factory=list)
    obstacles: dict[int, Obstacles] = field(default_factory=dict)
    plans: list[tuple[int, np.ndarray, np.ndarray]] = field(default_factory=list)
    invalid_outputs: int = 0


@dataclass(frozen=True)
class ReplayModel:
    """The model the inference core runs, loaded as vla_inference_node loads it."""

    config: ModelConfig
    backend: Backend
    name: str  # the model id the plans carry
    encoder: InstructionEncoder


class OfflinePipeline:
    """The pipeline's cores fed from recorded messages in log-time order."""

    def __init__(
        self,
        rig: RigConfig,
        params: dict[str, dict[str, object]],
        model: ReplayModel | None,
        plan_topic: str | None = None,
    ) -> None:
        """Build the cores from the nodes' parameters: params[node name] = its values.

        `model` None plans nothing: the monitor then needs `plan_topic`, the recorded plans it
        judges instead of the model's. The tracking controller runs when `params` has
        trajectory_output_node's values.
        """
        sync, monitor = params['sensor_sync_node'], params['safety_monitor_node']
        self.sync = OfflineSync(
            SensorSyncCore(rig, sync_config(rig, sync)), sync['odometry_topic']
        )
        self.model = model
        self.inference = None
        self.map_layers: dict[str, str] = {}
        if model is not None:
            inference = params['vla_inference_node']
            self.inference = InferenceCore.from_parameters(
                model.config, model.backend, model.encoder.encode, inference
            )
            prefix = str(inference['map_prior_topic_prefix']).rstrip('/')
            self.map_layers = {f'{prefix}/{layer}': layer for layer in MAP_PRIOR_LAYERS if prefix}
            self.map_priors = MapPriorBuffer(
                model.config, float(inference['map_prior_max_offset_s'])
            )
        self.plan_topic = plan_topic
        self.monitor = SafetyMonitor(monitor_config(monitor))
        self.record = ReplayRecord()
        self.feed = MonitorFeed(
            self.monitor, monitor['max_plan_points'], self._refused, monitor['max_obstacles']
        )
        self.odometry_topic = str(monitor['odometry_topic'])
        self.obstacles_topic = str(monitor['obstacles_topic'])
        self.plan_trigger = PlanTrigger(float(monitor['rate_hz']))
        self.period_ns = self.plan_trigger.period_ns
        self._watchdog = LogTimer(self.period_ns)
        self.control = None
        if 'trajectory_output_node' in params:
            self.control = OfflineControl(params['trajectory_output_node'])
        self.instruction = Instruction()
        self._previous_speed: tuple[int, float] | None = None
        self._last_ns = 0
        self._state: tuple[str, str] | None = None

    @property
    def topics(self) -> set[str]:
        """The topics the pipeline consumes."""
        return {
            *self.sync.topics,
            *self.map_layers,
            INSTRUCTION_TOPIC,
            self.odometry_topic,
            self.obstacles_topic,
            *((self.plan_topic,) if self.plan_topic else ()),
            *((self.control.odometry_topic,) if self.control else ()),
        }

    def feed_message(self, topic: str, message: object, log_time_ns: int) -> list[Published]:
        """Deliver one recorded message at its log time; return what was published until then."""
        published = self._ticks_until(log_time_ns)
        if topic == INSTRUCTION_TOPIC:
            self._instruct(message)
        if topic in self.map_layers:
            try:
                self.map_priors.add(self.map_layers[topic], message)
            except ValueError as error:
                self._refused('map_prior', str(error))
        if topic in self.sync.topics:
            for frame in self.sync.feed(topic, message, log_time_ns):
                published += self._frame(frame, log_time_ns)
        if topic == self.odometry_topic:
            pose = message.pose.pose
            self.record.odometry.append(
                (
                    stamp_to_ns(message.header.stamp),
                    pose.position.x,
                    pose.position.y,
                    yaw_of(pose.orientation),
                )
            )
            self.feed.odometry(message)
        if topic == self.obstacles_topic:
            if message.header.frame_id == 'odom':
                stamp = stamp_to_ns(message.header.stamp)
                self.record.obstacles[stamp] = Obstacles.from_message(message)
            self.feed.obstacles(message)
        if topic == self.plan_topic:
            published += self._judge(message, log_time_ns)
        if self.control is not None and topic == self.control.odometry_topic:
            self.control.odometry(message)
        return published

    def finish(self) -> list[Published]:
        """Emit the frames still pending, then one more monitor cycle after the last message."""
        published = []
        for frame in self.sync.finish():
            published += self._frame(frame, frame.stamp_ns)
        return published + self._ticks_until(self._last_ns + self.period_ns)

    def close(self) -> None:
        """Stop the sync core's preprocessing threads (one process replays several bags)."""
        self.sync.core.close()

    def open_loop(self) -> dict[str, float | int]:
        """Return L2 and collision metrics of every plan with a logged 3 s future."""
        track = PoseTrack.from_samples(sorted(self.record.odometry))
        stamps = np.array(sorted(self.record.obstacles), dtype=np.int64)
        scores: list[FrameScores] = []
        for stamp_ns, planned, pose in self.record.plans:
            truth = future_trajectory(track, stamp_ns, self.model.config)
            if truth is not None:
                scores.append(
                    score_frame(
                        planned,
                        truth,
                        pose,
                        stamp_ns,
                        self.model.config,
                        self.record.obstacles,
                        stamps,
                    )
                )
        return summarise(scores)

    def _instruct(self, message: Instruction) -> None:
        """Take an instruction as vla_inference_node's intake does: unreadable text is refused."""
        check = check_instruction(message.text)
        reason = refusal(message.text, check)
        if reason:
            self._refused('instruction', f'{message.id}: {reason}')
            return
        self.instruction = Instruction(id=message.id, text='' if check.empty else check.text)
        if self.inference is not None:
            self.inference.set_instruction(check.text, stamp_to_ns(message.header.stamp))

    def _refused(self, kind: str, reason: str) -> None:
        self.record.refused[kind] += 1

    def _frame(self, frame: SyncedFrame, log_time_ns: int) -> list[Published]:
        """Plan a frame the sync core emitted, as vla_inference_node would, at `log_time_ns`."""
        message = sensor_frame_message(frame)
        status = sensor_status_message(frame)
        self.feed.sensor_status(status)
        published = [
            Published('/vla/sensor_frame', log_time_ns, message),
            Published('/vla/sensor_status', log_time_ns, status),
        ]
        if self.model is None:
            return published
        config = self.model.config
        frame_input = planning_input(message, config, self._previous_speed)
        self._previous_speed = (frame_input.stamp_ns, frame_input.ego_state[0])
        try:
            plan = self.inference.step(frame_input, self.map_priors.at(frame_input.stamp_ns))
        except InvalidModelOutputError:
            self.record.invalid_outputs += 1
            return published
        self.record.latencies_ms.append(
            plan.preprocess_ms + plan.inference_ms + plan.postprocess_ms
        )
        self.record.plans.append(
            (frame_input.stamp_ns, plan.trajectory, np.array(frame_input.pose))
        )
        plan_out = plan_message(
            message,
            plan,
            config,
            self.instruction,
            self.model.name,
            self.model.backend.name,
            0.0,
        )
        plan_out.preprocess_ms = plan_out.inference_ms = plan_out.postprocess_ms = 0.0
        published += [
            Published('/vla/plan', log_time_ns, plan_out),
            Published(
                '/vla/neural_map', log_time_ns, neural_map_message(message.header, plan, config)
            ),
        ]
        if self.plan_topic is None:
            published += self._judge(plan_out, log_time_ns)
        return published

    def _judge(self, plan: object, log_time_ns: int) -> list[Published]:
        """Give the monitor a plan as its node's callback does: a cycle at once, if due."""
        self.feed.plan(plan)
        if not self.plan_trigger.fire(log_time_ns):
            return []
        self._watchdog.restart(log_time_ns)
        return self._cycle(log_time_ns)

    def _ticks_until(self, now_ns: int) -> list[Published]:
        """Run the monitor's watchdog and the controller's timer up to `now_ns`, in time order.

        The watchdog ticks one period after the last cycle; at equal times the monitor cycles
        before the controller reads its trajectory.
        """
        self._last_ns = max(self._last_ns, now_ns)
        published = []
        while True:
            watchdog_ns = self._watchdog.next_tick_ns(now_ns)
            control_ns = self.control.timer.next_tick_ns(now_ns) if self.control else None
            if watchdog_ns <= now_ns and (control_ns is None or watchdog_ns <= control_ns):
                self._watchdog.advance()
                if self.plan_trigger.watchdog(watchdog_ns):
                    published += self._cycle(watchdog_ns)
            elif control_ns is not None and control_ns <= now_ns:
                published.append(self.control.tick())
            else:
                return published

    def _cycle(self, now_ns: int) -> list[Published]:
        output = self.monitor.step(now_ns)
        trajectory = monitor_trajectory_message(output, to_time(now_ns), self.feed.odometry_frame)
        status = safety_status_message(
            output, trajectory.header, self.monitor.config.machine.clear_cycles
        )
        state = (output.state.name, output.origin.name)
        if state != self._state:
            self._state = state
            self.record.events.append(SafetyEvent(now_ns, *state, failing_reasons(output)))
        if self.control is not None:
            self.control.feed.take_trajectory(trajectory)
        return [
            Published('/vla/trajectory', now_ns, trajectory),
            Published('/vla/safety_status', now_ns, status),
        ]


class OfflineControl:
    """trajectory_output_node's controller on log time: its ControlFeed and its control timer."""

    def __init__(self, params: dict[str, object]) -> None:
        self.feed = ControlFeed(TrackingController(controller_config(params), gate_limits(params)))
        self.odometry_topic = str(params['odometry_topic'])
        self.timer = LogTimer(round(NS_PER_S / float(params['control_rate_hz'])))

    def odometry(self, message: object) -> None:
        """Take odometry; drop a malformed one as the node does (the monitor counts it)."""
        with suppress(ValueError):
            self.feed.take_odometry(message)

    def tick(self) -> Published:
        """Run the control timer once: the command for the tick's time."""
        now_ns = self.timer.advance()
        command = control_command_message(self.feed.step(now_ns), to_time(now_ns))
        return Published(CONTROL_COMMAND_TOPIC, now_ns, command)
