"""safety_monitor_node: the rule layer between the model and the vehicle.

A thin wrapper over SafetyMonitor. Every cycle of its timer (node clock, so `use_sim_time`
works) it publishes on `vla/trajectory` whatever the monitor decided — the plan, a clamped or
held one, or a stop — and the reasons on `vla/safety_status`, whether or not inputs arrived.
Its cycle runs on a thread of its own, apart from its input callbacks, so a heavy input cannot
delay it. Every limit is a read-only parameter with a range: a running monitor cannot be
loosened. With `autoware` true its obstacles come from Autoware's PredictedObjects and its
state also goes out as Autoware's hazard status and hazard lights command (vla_autoware).
Plans are taken serialized and only the fields the monitor judges are read from their bytes
(vla_ros.raw_messages): rclpy's conversion of the 16 candidates took 1.5-2 ms of each plan.
"""

import dataclasses
import math
import threading
import time
from collections.abc import Callable

import numpy as np
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import Odometry
from rcl_interfaces.msg import SetParametersResult
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.serialization import deserialize_message
from std_msgs.msg import Header
from vla_msgs.msg import (
    ObstacleArray,
    SafetyCheck,
    SafetyStatus,
    SensorStatus,
    Trajectory,
    VlaPlan,
)

from vla_autoware.interfaces import autoware_types
from vla_autoware.monitor_state import hazard_lights_command, hazard_status
from vla_autoware.objects import Refusal, obstacle_array
from vla_model.trajectory_messages import (
    trajectory_arrays,
    trajectory_message,
    write_trajectory,
)
from vla_perception.odometry import OdometrySample, yaw_of
from vla_perception.synchronizer import stamp_to_ns
from vla_planning.collision import Obstacles, VehicleShape
from vla_planning.safety_monitor import (
    EgoSample,
    MonitorConfig,
    MonitorOutput,
    ObstacleInput,
    PlanInput,
    SafetyMonitor,
    SensorStatusInput,
)
from vla_planning.safety_rules import RssParameters, SafetyLimits
from vla_planning.safety_states import SafetyState, StateMachineConfig
from vla_planning.speed_profiles import StopProfile
from vla_planning.timed_path import TimedPath, unwrap
from vla_ros.cdr import sequence_length_after_header
from vla_ros.diagnostics import ERROR, OK, WARN, diagnostic_array, diagnostic_status
from vla_ros.node_main import run_node
from vla_ros.parameters import ParameterSpec, declare_parameters
from vla_ros.qos import RELIABLE, SENSOR_DATA
from vla_ros.raw_messages import CdrWriter, MalformedMessage, read_message

PI = 3.1416

RANGES: dict[str, tuple[float, float]] = {
    'limits.plan_age_s': (0.05, 5.0),
    'limits.plan_lost_s': (0.1, 10.0),
    'limits.odometry_age_s': (0.01, 5.0),
    'limits.sensor_frame_age_s': (0.01, 5.0),
    'limits.obstacles_age_s': (0.01, 5.0),
    'limits.min_horizon_s': (0.5, 20.0),
    'limits.max_point_spacing_m': (0.1, 1000.0),
    'limits.max_acceleration_mps2': (0.1, 10.0),
    'limits.min_acceleration_mps2': (-15.0, -0.1),
    'limits.max_longitudinal_jerk_mps3': (0.1, 50.0),
    'limits.max_lateral_acceleration_mps2': (0.1, 15.0),
    'limits.max_curvature_1pm': (0.01, 10.0),
    'limits.max_relative_angle_rad': (0.1, PI),
    'limits.max_steering_rate_rps': (0.1, 50.0),
    'limits.speed_limit_mps': (0.5, 70.0),
    'limits.min_confidence': (0.0, 1.0),
    'limits.min_time_to_collision_s': (0.0, 10.0),
    'limits.max_position_deviation_m': (0.1, 20.0),
    'limits.max_yaw_deviation_rad': (0.05, PI),
    'limits.max_speed_deviation_mps': (0.1, 30.0),
    'limits.max_cameras_not_ok': (0, 32),
    'rss.response_time_s': (0.0, 5.0),
    'rss.max_acceleration_mps2': (0.0, 10.0),
    'rss.min_braking_mps2': (0.5, 15.0),
    'rss.max_braking_mps2': (0.5, 15.0),
    'vehicle.length_m': (0.5, 30.0),
    'vehicle.width_m': (0.3, 5.0),
    'vehicle.rear_overhang_m': (0.0, 10.0),
    'vehicle.wheelbase_m': (0.5, 15.0),
    'vehicle.margin_m': (0.0, 2.0),
    'state_machine.relax_cycles': (1, 1000),
    'state_machine.clear_cycles': (1, 10000),
    'state_machine.max_hold_s': (0.0, 10.0),
    'comfortable_stop.deceleration_mps2': (0.1, 10.0),
    'comfortable_stop.jerk_mps3': (0.05, 100.0),
    'emergency_stop.deceleration_mps2': (0.1, 15.0),
    'emergency_stop.jerk_mps3': (0.05, 200.0),
}
"""Ranges of the read-only limits; every default and its source is in docs/SAFETY.md."""


def limit_specs() -> list[ParameterSpec]:
    """Return one read-only ParameterSpec per field of the monitor's configuration."""
    defaults = MonitorConfig()
    sections = {
        'limits': defaults.limits,
        'rss': defaults.rss,
        'vehicle': defaults.shape,
        'state_machine': defaults.machine,
        'comfortable_stop': defaults.comfortable_stop,
        'emergency_stop': defaults.emergency_stop,
    }
    specs = []
    for section, values in sections.items():
        for item in dataclasses.fields(values):
            name = f'{section}.{item.name}'
            low, high = RANGES[name]
            specs.append(
                ParameterSpec(
                    name,
                    getattr(values, item.name),
                    f'Hard limit {name}; its meaning and source are in docs/SAFETY.md.',
                    low,
                    high,
                )
            )
    return specs


DEFAULT_MAX_OBSTACLES = 1000
"""Obstacles a list may hold. A dense urban scene has a few hundred tracked objects; rclpy took
0.7-0.8 s to build a list of 20 000 and 28-36 ms for 1 000, on the monitor's input thread
(loaded 2-vCPU VM; issue 21, docs/SAFETY.md)."""

EXECUTOR_THREADS = 3
"""Threads of the node's executor: one per callback group that may run at once (the cycle, the
inputs, and the node's default group with its parameter services), so that a busy input
callback never leaves the cycle waiting for a thread."""

PLAN_FIELDS = ('header', 'trajectory', 'confidence')
"""What plan_input reads of a VlaPlan; the rest of a serialized plan is checked, not built."""

OBSTACLE_ARRAY_BYTE_FIELDS = 1  # vla_msgs/ObstacleArray: `source` between header and list
PREDICTED_OBJECTS_BYTE_FIELDS = 0  # autoware_perception_msgs/PredictedObjects: none


PARAMETERS = [
    *limit_specs(),
    ParameterSpec(
        'collision_horizon_s', 4.5, 'How far ahead collisions are checked, s.', 0.5, 20.0
    ),
    ParameterSpec(
        'require_obstacles',
        True,
        'Stop when the obstacle source is missing; false: run without collision rules.',
    ),
    ParameterSpec(
        'enforce',
        True,
        'false: log-only, for measuring the model alone; every rule runs and is reported, but '
        'the model plan is published unchanged whenever it is sane. Never on a vehicle.',
    ),
    ParameterSpec('rate_hz', 10.0, 'Monitor cycles per second.', 1.0, 100.0),
    ParameterSpec('odometry_topic', '/localization/kinematic_state', 'nav_msgs/Odometry input.'),
    ParameterSpec(
        'obstacles_topic',
        '/perception/obstacles',
        'vla_msgs/ObstacleArray input (when autoware is false).',
    ),
    ParameterSpec(
        'autoware',
        False,
        'true: obstacles from autoware_perception_msgs/PredictedObjects instead of '
        "obstacles_topic, and the state also as Autoware's hazard status and hazard lights "
        'command (the Autoware message packages must be installed).',
    ),
    ParameterSpec(
        'autoware_objects_topic',
        '/perception/object_recognition/objects',
        'autoware_perception_msgs/PredictedObjects input when autoware is true.',
    ),
    ParameterSpec(
        'autoware_hazard_status_topic',
        '/system/emergency/hazard_status',
        'autoware_system_msgs/HazardStatusStamped output when autoware is true.',
    ),
    ParameterSpec(
        'autoware_hazard_lights_topic',
        '/system/emergency/hazard_lights_cmd',
        'autoware_vehicle_msgs/HazardLightsCommand output when autoware is true.',
    ),
    ParameterSpec('max_plan_points', 10000, 'Longer plans are refused unread.', 2, 1000000),
    ParameterSpec(
        'max_obstacles',
        DEFAULT_MAX_OBSTACLES,
        'Longer obstacle lists (and Autoware object lists) are refused unread, by name; the '
        'obstacle input then goes stale and the monitor stops.',
        1,
        100000,
    ),
    ParameterSpec(
        'degraded_max_speed_mps',
        25.0,
        'Speed cap while DEGRADED, m/s; may be changed at run time, up to limits.speed_limit_mps.',
        0.0,
        70.0,
        read_only=False,
    ),
]


def monitor_config(params: dict[str, object]) -> MonitorConfig:
    """Build the monitor's configuration from declared parameter values; refuse contradictions."""

    def section(prefix: str, cls: type) -> object:
        return cls(**{f.name: params[f'{prefix}.{f.name}'] for f in dataclasses.fields(cls)})

    config = MonitorConfig(
        limits=section('limits', SafetyLimits),
        rss=section('rss', RssParameters),
        shape=section('vehicle', VehicleShape),
        machine=section('state_machine', StateMachineConfig),
        comfortable_stop=section('comfortable_stop', StopProfile),
        emergency_stop=section('emergency_stop', StopProfile),
        degraded_max_speed_mps=params['degraded_max_speed_mps'],
        collision_horizon_s=params['collision_horizon_s'],
        require_obstacles=params['require_obstacles'],
        enforce=params['enforce'],
    )
    limits = config.limits
    if limits.plan_age_s > limits.plan_lost_s:
        raise ValueError(
            f'limits.plan_age_s ({limits.plan_age_s} s) must not exceed '
            f'limits.plan_lost_s ({limits.plan_lost_s} s)'
        )
    if config.degraded_max_speed_mps > limits.speed_limit_mps:
        raise ValueError(
            f'degraded_max_speed_mps ({config.degraded_max_speed_mps} m/s) must not exceed '
            f'limits.speed_limit_mps ({limits.speed_limit_mps} m/s)'
        )
    return config


def yaw_rates(path: TimedPath) -> np.ndarray:
    """Heading rate at each point (towards the next one; the last repeats), rad/s."""
    if len(path) < 2:
        return np.zeros(len(path))
    headings = unwrap(path.poses[:, 2])
    forward = (headings[1:] - headings[:-1]) / (path.times_s[1:] - path.times_s[:-1])
    return np.concatenate([forward, forward[-1:]])


def plan_input(message: object, max_points: int) -> PlanInput:
    """Convert a VlaPlan's selected trajectory; raise ValueError naming why it cannot be read.

    `message` is a VlaPlan or what read_message reads of one (PLAN_FIELDS at least).
    """
    if message.header.frame_id != 'base_link':
        raise ValueError(f"plan frame is {message.header.frame_id!r}, expected 'base_link'")
    if len(message.trajectory.points) > max_points:
        raise ValueError(
            f'plan has {len(message.trajectory.points)} points, more than '
            f'max_plan_points {max_points}'
        )
    times, poses, _ = trajectory_arrays(message.trajectory)
    return PlanInput(stamp_to_ns(message.header.stamp), times, poses, float(message.confidence))


def ego_sample(message: Odometry) -> EgoSample:
    """Convert an Odometry; raise ValueError naming a non-finite or malformed value."""
    sample = OdometrySample.from_message(message)
    return EgoSample(
        sample.stamp_ns,
        np.array([sample.position[0], sample.position[1], yaw_of(message.pose.pose.orientation)]),
        float(sample.linear_velocity[0]),
        float(sample.angular_velocity[2]),
    )


def too_many_obstacles(count: int, max_obstacles: int) -> str | None:
    """Return why a list of `count` obstacles is refused, or None within the bound."""
    if count > max_obstacles:
        return f'obstacle list has {count} obstacles, more than max_obstacles {max_obstacles}'
    return None


def obstacle_input(
    message: ObstacleArray, odometry_frame: str, max_obstacles: int
) -> ObstacleInput:
    """Convert an ObstacleArray in base_link or the odometry frame; raise ValueError otherwise."""
    refusal = too_many_obstacles(len(message.obstacles), max_obstacles)
    if refusal is not None:
        raise ValueError(refusal)
    frame = message.header.frame_id
    if frame not in ('base_link', odometry_frame):
        raise ValueError(f"frame {frame!r} is neither 'base_link' nor {odometry_frame!r}")
    return ObstacleInput(
        stamp_to_ns(message.header.stamp), Obstacles.from_message(message), frame != 'base_link'
    )


def sensor_status_input(message: SensorStatus) -> SensorStatusInput:
    """Convert a SensorStatus: the frame's stamp and the health of each camera."""
    return SensorStatusInput(
        stamp_to_ns(message.header.stamp), tuple(camera.health for camera in message.cameras)
    )


def _published_frame(output: MonitorOutput, odometry_frame: str) -> str:
    return odometry_frame if output.in_odom else 'base_link'


def _published_points(output: MonitorOutput) -> tuple:
    """Return the origin and per-point arrays of the trajectory a cycle publishes."""
    path = output.trajectory
    return (
        output.origin.value,
        path.times_s,
        path.poses,
        path.speeds_mps,
        path.accelerations_mps2,
        yaw_rates(path),
    )


def monitor_trajectory_message(
    output: MonitorOutput, stamp: Time, odometry_frame: str
) -> Trajectory:
    """Build the trajectory a cycle publishes, stamped at the cycle, in its frame."""
    header = Header(stamp=stamp, frame_id=_published_frame(output, odometry_frame))
    return trajectory_message(header, *_published_points(output))


def monitor_trajectory_bytes(output: MonitorOutput, stamp_ns: int, odometry_frame: str) -> bytes:
    """Serialize the trajectory monitor_trajectory_message builds, without its rclpy objects.

    What the node publishes: building the trajectory's points as rclpy messages and converting
    them for DDS was most of the monitor's publishing time, on the path from plan to command.
    """
    out = CdrWriter()
    header = (stamp_ns, _published_frame(output, odometry_frame))
    write_trajectory(out, header, *_published_points(output))
    return out.getvalue()


def failing_reasons(output: MonitorOutput) -> str:
    """Return the rules that did not pass in a cycle, with their reasons ('ok' when none)."""
    return '; '.join(f'{c.rule}: {c.reason}' for c in output.checks if c.verdict) or 'ok'


def safety_status_message(
    output: MonitorOutput, header: Header, clear_cycles: int
) -> SafetyStatus:
    """Build the SafetyStatus of one cycle: state, origin, ages, every check with its reason."""
    status = SafetyStatus(
        header=Header(stamp=header.stamp, frame_id='base_link'),
        state=int(output.state),
        trajectory_origin=output.origin.value,
        latched=output.latched,
        clean_cycles=output.clean_cycles,
        clean_cycles_to_clear=clear_cycles,
        hazard_lights=output.state == SafetyState.MINIMAL_RISK,
        plan_age_s=output.ages_s['plan'],
        sensor_frame_age_s=output.ages_s['sensor_frame'],
        odometry_age_s=output.ages_s['odometry'],
        obstacles_age_s=output.ages_s['obstacles'],
        time_to_collision_s=output.time_to_collision_s,
        lead_distance_m=output.lead_distance_m,
        rss_safe_distance_m=output.rss_safe_distance_m,
    )
    status.checks = [
        SafetyCheck(
            rule=check.rule,
            verdict=int(check.verdict),
            reason=check.reason,
            value=float(check.value),
            limit=float(check.limit),
        )
        for check in output.checks
    ]
    return status


class MonitorFeed:
    """The monitor's message callbacks: convert each input, refuse a bad one, feed the core.

    The node and the offline replay share it, so a message is refused for the same reason in
    both; `on_refused(kind, reason)` is told of each refusal (kind: plan, odometry, obstacles).
    Obstacle lists over `max_obstacles` are refused, from the serialized bytes where the node
    has them, so that building an oversized list cannot hold up the monitor's cycle. Serialized
    plans are read only as far as the monitor judges them (PLAN_FIELDS).

    A message is converted outside `lock`, which is held only while the result is handed to the
    core: the node steps the core on another thread, holding the same lock, so a cycle sees
    every input whole and never waits for a conversion. On one thread (the replay, the
    simulator's loop) the lock is never contended and changes nothing.
    """

    def __init__(
        self,
        monitor: SafetyMonitor,
        max_plan_points: int,
        on_refused: Callable[[str, str], None],
        max_obstacles: int = DEFAULT_MAX_OBSTACLES,
    ) -> None:
        self.monitor = monitor
        self.max_plan_points = max_plan_points
        self.max_obstacles = max_obstacles
        self.on_refused = on_refused
        self.odometry_frame = 'odom'
        self.lock = threading.Lock()

    def plan(self, message: object) -> None:
        """Take a plan; a refused one is reported to the core as invalid at its stamp."""
        try:
            plan = plan_input(message, self.max_plan_points)
        except ValueError as error:
            self._refuse_plan(stamp_to_ns(message.header.stamp), str(error))
            return
        with self.lock:
            self.monitor.on_plan(plan)

    def serialized_plan(self, raw: bytes, now_ns: int) -> bool:
        """Take a serialized VlaPlan, reading only PLAN_FIELDS; return False if it is malformed.

        Bytes that do not parse carry no stamp to trust: they replace the plan as an invalid one
        received at `now_ns`, refused as `malformed: <why>`, as a plan that cannot be read is.
        """
        try:
            message = read_message(raw, VlaPlan, fields=PLAN_FIELDS)
        except MalformedMessage as error:
            self._refuse_plan(now_ns, f'malformed: {error}')
            return False
        self.plan(message)
        return True

    def _refuse_plan(self, stamp_ns: int, reason: str) -> None:
        self.on_refused('plan', reason)
        with self.lock:
            self.monitor.on_invalid_plan(stamp_ns, reason)

    def odometry(self, message: Odometry) -> None:
        """Take odometry; its frame becomes the frame obstacles and trajectories are in."""
        try:
            sample = ego_sample(message)
        except ValueError as error:
            self.on_refused('odometry', str(error))
            return
        with self.lock:
            self.odometry_frame = message.header.frame_id or self.odometry_frame
            self.monitor.on_odometry(sample)

    def obstacles(self, message: ObstacleArray) -> None:
        """Take the independent obstacle list."""
        try:
            obstacles = obstacle_input(message, self.odometry_frame, self.max_obstacles)
        except ValueError as error:
            self.on_refused('obstacles', str(error))
            return
        with self.lock:
            self.monitor.on_obstacles(obstacles)

    def serialized_obstacles(self, raw: bytes) -> None:
        """Take a serialized ObstacleArray: refused unread over the bound, else as obstacles."""
        if not self._refused_unread(raw, OBSTACLE_ARRAY_BYTE_FIELDS):
            self.obstacles(deserialize_message(raw, ObstacleArray))

    def serialized_predicted_objects(self, raw: bytes, message_type: type) -> list[Refusal]:
        """Take serialized PredictedObjects: refused unread over the bound, else as objects."""
        if self._refused_unread(raw, PREDICTED_OBJECTS_BYTE_FIELDS):
            return []
        return self.predicted_objects(deserialize_message(raw, message_type))

    def predicted_objects(self, message: object) -> list[Refusal]:
        """Take Autoware's PredictedObjects; return the objects refused (the rest are used).

        In a frame the monitor cannot place, or over `max_obstacles`, nothing reaches the core
        (an empty list would read as "all clear"): the obstacle source goes stale instead, and
        the monitor stops.
        """
        refusal = too_many_obstacles(len(message.objects), self.max_obstacles)
        if refusal is not None:
            self.on_refused('obstacles', refusal)
            return []
        array, refusals = obstacle_array(message, self.odometry_frame)
        if array is not None:
            self.obstacles(array)
        return refusals

    def sensor_status(self, message: SensorStatus) -> None:
        """Take the sensor-sync status of a frame."""
        status = sensor_status_input(message)
        with self.lock:
            self.monitor.on_sensor_status(status)

    def _refused_unread(self, raw: bytes, byte_fields: int) -> bool:
        """Refuse a serialized list over the bound by its count; True if refused.

        A count that cannot be read (not plain CDR) is left to the full deserialization, whose
        list is then checked against the same bound.
        """
        count = sequence_length_after_header(raw, byte_fields)
        refusal = None if count is None else too_many_obstacles(count, self.max_obstacles)
        if refusal is not None:
            self.on_refused('obstacles', refusal)
        return refusal is not None


class PlanTrigger:
    """When the monitor cycles: at once on an arriving plan, and on a watchdog when plans stop.

    Cycling on each plan takes the period's phase out of the camera-to-trajectory latency (up to
    a whole period, 100 ms at 10 Hz); the period timer stays as the watchdog that acts when plans
    stop. Plan-run cycles are at most two per period, so a plan flood cannot take the monitor's
    CPU; a plan arriving sooner is judged at the next of those cycles or of the watchdog's. The
    watchdog stands aside for a period after a plan-run cycle: in lockstep the clock jumps a whole
    period between one step's plan and the next, and a watchdog cycle before every plan would
    judge each plan twice and count the state machine's cycles double.
    """

    def __init__(self, rate_hz: float) -> None:
        self.period_ns = round(1e9 / rate_hz)
        self.min_gap_ns = self.period_ns // 2
        self._last_ns: int | None = None

    def _within(self, now_ns: int, span_ns: int, inclusive: bool) -> bool:
        if self._last_ns is None:
            return False
        since = now_ns - self._last_ns  # negative when time ran backwards: not within
        return 0 <= since <= span_ns if inclusive else 0 <= since < span_ns

    def fire(self, now_ns: int) -> bool:
        """Return True if a plan arriving at `now_ns` runs a cycle now."""
        if self._within(now_ns, self.min_gap_ns, inclusive=False):
            return False
        self._last_ns = now_ns
        return True

    def watchdog(self, now_ns: int) -> bool:
        """Return True if the watchdog's tick at `now_ns` runs a cycle."""
        return not self._within(now_ns, self.period_ns, inclusive=True)


class SafetyMonitorNode(Node):
    """Run the safety monitor on each plan and on a watchdog period; publish its outputs."""

    def __init__(self, **kwargs) -> None:
        super().__init__('safety_monitor_node', **kwargs)
        self.params = declare_parameters(self, PARAMETERS)
        self.monitor = SafetyMonitor(monitor_config(self.params))
        # The cycle (plan-run and watchdog cycles, diagnostics) runs in a callback group of its
        # own and every input in another, on threads of their own (EXECUTOR_THREADS): a heavy
        # input callback cannot delay a cycle (issue 21). They share the core under feed.lock.
        self.cycle_group = MutuallyExclusiveCallbackGroup()
        self.input_group = MutuallyExclusiveCallbackGroup()
        self.feed = MonitorFeed(
            self.monitor,
            self.params['max_plan_points'],
            self._reject,
            self.params['max_obstacles'],
        )
        self.rejected: dict[str, int] = {
            'plan': 0,
            'odometry': 0,
            'obstacles': 0,
            'autoware_objects': 0,
        }
        self.plans_malformed = 0  # of the refused plans, those whose bytes did not parse
        self._last_refusal_log_s: dict[str, float] = {}
        self.transitions = 0
        self._last: MonitorOutput | None = None
        self.add_on_set_parameters_callback(self._validate_parameters)
        self.add_post_set_parameters_callback(self._apply_parameters)
        self.trajectory_publisher = self.create_publisher(Trajectory, 'vla/trajectory', RELIABLE)
        self.status_publisher = self.create_publisher(SafetyStatus, 'vla/safety_status', RELIABLE)
        self.diagnostics_publisher = self.create_publisher(
            DiagnosticArray, '/diagnostics', RELIABLE
        )
        # Plans are taken serialized (raw): only what the monitor judges is read (PLAN_FIELDS).
        plans = self.create_subscription(
            VlaPlan,
            'vla/plan',
            self._on_plan,
            RELIABLE,
            raw=True,
            callback_group=self.input_group,
        )
        odometry = self.create_subscription(
            Odometry,
            self.params['odometry_topic'],
            self.feed.odometry,
            SENSOR_DATA,
            callback_group=self.input_group,
        )
        # Obstacle lists are taken serialized (raw): an oversized one is refused by its count
        # before rclpy builds it (MonitorFeed).
        self.autoware = autoware_types() if self.params['autoware'] else None
        if self.autoware is None:
            obstacles = self.create_subscription(
                ObstacleArray,
                self.params['obstacles_topic'],
                self.feed.serialized_obstacles,
                RELIABLE,
                raw=True,
                callback_group=self.input_group,
            )
        else:
            obstacles = self.create_subscription(
                self.autoware.PredictedObjects,
                self.params['autoware_objects_topic'],
                self._on_predicted_objects,
                RELIABLE,
                raw=True,
                callback_group=self.input_group,
            )
            self.hazard_status_publisher = self.create_publisher(
                self.autoware.HazardStatusStamped,
                self.params['autoware_hazard_status_topic'],
                RELIABLE,
            )
            self.hazard_lights_publisher = self.create_publisher(
                self.autoware.HazardLightsCommand,
                self.params['autoware_hazard_lights_topic'],
                RELIABLE,
            )
        self.create_subscription(
            SensorStatus,
            'vla/sensor_status',
            self.feed.sensor_status,
            RELIABLE,
            callback_group=self.input_group,
        )
        self.input_topics = {
            'plan': plans.topic_name,
            'odometry': odometry.topic_name,
            'obstacles': obstacles.topic_name,
        }
        self.plan_trigger = PlanTrigger(self.params['rate_hz'])
        # A plan, once handed to the core, wakes the cycle's group through this condition.
        self.plan_arrived = self.create_guard_condition(
            self._on_plan_arrived, callback_group=self.cycle_group
        )
        self.watchdog = self.create_timer(
            1.0 / self.params['rate_hz'], self._on_watchdog, callback_group=self.cycle_group
        )
        self.create_timer(1.0, self._publish_diagnostics, callback_group=self.cycle_group)
        self.get_logger().info(
            f'monitoring at {self.params["rate_hz"]} Hz; limits are read-only '
            '(docs/SAFETY.md lists them with their sources); obstacles from '
            + (
                f'Autoware on {self.params["autoware_objects_topic"]}, state to Autoware on '
                f'{self.params["autoware_hazard_status_topic"]} and '
                f'{self.params["autoware_hazard_lights_topic"]}'
                if self.autoware
                else self.params['obstacles_topic']
            )
        )
        if not self.params['enforce']:
            self.get_logger().warning(
                'LOG-ONLY (enforce:=false): rules are checked and reported but never override '
                'the model; for measuring the model alone, never on a vehicle'
            )

    def _validate_parameters(self, parameters: list[Parameter]) -> SetParametersResult:
        """Check run-time changes (read-only limits never reach here: rclpy refuses them)."""
        for parameter in parameters:
            if parameter.name == 'degraded_max_speed_mps':
                limit = self.monitor.config.limits.speed_limit_mps
                if parameter.value > limit:
                    return SetParametersResult(
                        successful=False,
                        reason=f'degraded_max_speed_mps {parameter.value} m/s exceeds the hard '
                        f'limit limits.speed_limit_mps {limit} m/s',
                    )
        return SetParametersResult(successful=True)

    def _apply_parameters(self, parameters: list[Parameter]) -> None:
        """Apply run-time changes once every validator has accepted them."""
        for parameter in parameters:
            if parameter.name == 'degraded_max_speed_mps':
                with self.feed.lock:
                    self.monitor.set_degraded_max_speed(parameter.value)
                self.get_logger().info(f'degraded_max_speed_mps is now {parameter.value} m/s')

    def _reject(self, what: str, error: str) -> None:
        """Count a refused message; log the first of each kind, then one per 2 s per kind."""
        self.rejected[what] += 1
        now_s = time.monotonic()
        if now_s - self._last_refusal_log_s.get(what, -math.inf) >= 2.0:
            self._last_refusal_log_s[what] = now_s
            self.get_logger().error(
                f'{what} message on {self.input_topics[what]} refused '
                f'({self.rejected[what]} so far): {error}'
            )

    def _on_predicted_objects(self, raw: bytes) -> None:
        """Feed Autoware's objects; warn (throttled) naming each object left out, and why."""
        refusals = self.feed.serialized_predicted_objects(raw, self.autoware.PredictedObjects)
        for refusal in refusals:
            self.rejected['autoware_objects'] += 1
            self.get_logger().warning(
                f'Autoware object {refusal.object_name} refused: {refusal.reason}',
                throttle_duration_sec=2.0,
            )

    def _on_plan(self, raw: bytes) -> None:
        """Hand the plan to the core, then wake the cycle (plans between two cycles coalesce)."""
        if not self.feed.serialized_plan(raw, self.get_clock().now().nanoseconds):
            self.plans_malformed += 1
        self.plan_arrived.trigger()

    def _on_plan_arrived(self) -> None:
        """Run a plan-run cycle now, on the cycle's thread, if one is due (PlanTrigger)."""
        if self.plan_trigger.fire(self.get_clock().now().nanoseconds):
            self._cycle()
            self.watchdog.reset()

    def _on_watchdog(self) -> None:
        """Cycle when plans stop; a tick that stands aside restarts the period.

        A tick queued while a plan-run cycle reset the timer still runs after it, and rclpy's
        timer call then moves the next tick a second period out (200 ms without a cycle at
        10 Hz); restarting here keeps it one period after the plan-run cycle.
        """
        if self.plan_trigger.watchdog(self.get_clock().now().nanoseconds):
            self._cycle()
        else:
            self.watchdog.reset()

    def _cycle(self) -> None:
        # `now` is read under the lock: every input the step sees was handed over before it.
        with self.feed.lock:
            now = self.get_clock().now()
            output = self.monitor.step(now.nanoseconds)
            odometry_frame = self.feed.odometry_frame
        self.trajectory_publisher.publish(
            monitor_trajectory_bytes(output, now.nanoseconds, odometry_frame)
        )
        status = safety_status_message(
            output, Header(stamp=now.to_msg()), self.monitor.config.machine.clear_cycles
        )
        self.status_publisher.publish(status)
        if self.autoware is not None:
            self.hazard_status_publisher.publish(
                hazard_status(status, self.autoware.HazardStatusStamped)
            )
            self.hazard_lights_publisher.publish(
                hazard_lights_command(status, self.autoware.HazardLightsCommand)
            )
        self._log_transition(output)
        self._last = output

    def _log_transition(self, output: MonitorOutput) -> None:
        previous = self._last
        if previous is not None and (previous.state, previous.origin) == (
            output.state,
            output.origin,
        ):
            return
        self.transitions += previous is not None
        message = f'{output.state.name} ({output.origin.name}): {failing_reasons(output)}'
        if output.state == SafetyState.NOMINAL:
            self.get_logger().info(message)
        else:
            self.get_logger().warning(message)

    def _publish_diagnostics(self) -> None:
        output = self._last
        state = output.state if output else SafetyState.MINIMAL_RISK
        level = {
            SafetyState.NOMINAL: OK,
            SafetyState.DEGRADED: WARN,
            SafetyState.OVERRIDE: WARN,
            SafetyState.MINIMAL_RISK: ERROR,
        }[state]
        failing = [c for c in output.checks if c.verdict] if output else []
        values = {
            'state': state.name,
            'origin': output.origin.name if output else 'none',
            'latched': output.latched if output else False,
            'transitions': self.transitions,
            **{f'{what}_messages_refused': count for what, count in self.rejected.items()},
            'plan_messages_malformed': self.plans_malformed,
            'failing_rules': ', '.join(c.rule for c in failing) or 'none',
        }
        self.diagnostics_publisher.publish(
            diagnostic_array(
                self.get_clock().now().to_msg(),
                [
                    diagnostic_status(
                        'safety_monitor_node: state',
                        'vla_ros',
                        level,
                        failing[0].reason if failing else state.name.lower(),
                        values,
                    )
                ],
            )
        )


def main(args: list[str] | None = None) -> None:
    """Run safety_monitor_node until shut down."""
    run_node(SafetyMonitorNode, 'safety_monitor_node', args, threads=EXECUTOR_THREADS)


if __name__ == '__main__':
    main()
