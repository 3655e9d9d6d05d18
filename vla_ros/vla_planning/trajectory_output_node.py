"""trajectory_output_node: the safe trajectory out as a Path, markers and a control command.

The last stage of the pipeline (docs/TRAJECTORY_OUTPUT.md). It shows the safety monitor's
trajectory in RViz or Foxglove (nav_msgs/Path, and markers coloured by the monitor's state with
the model's candidates and rationale), and, for simulators and vehicles that have no controller,
follows it with TrackingController and publishes vla_msgs/ControlCommand at a fixed rate. With
`autoware` true it also publishes both in Autoware's types: the trajectory in the frame Autoware
reads (`map`), only when this node would track it, and autoware_control_msgs/Control. A thin
wrapper: the control law lives in the ROS-free tracking_controller module, the conversions in
vla_autoware. The model's plan (only drawn) is taken serialized and read with
vla_ros.raw_messages: rclpy's conversion of its candidates took 2 ms of each plan, on the cores the
safety monitor was judging that plan on. The markers are built, and the plan read, only while
something subscribes to them: drawing them was a fifth of the node's CPU time.
"""

from dataclasses import fields

import numpy as np
from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import Point, Pose, PoseStamped
from nav_msgs.msg import Odometry, Path
from rclpy.node import Node
from rclpy.subscription import MessageInfo
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker, MarkerArray
from vla_msgs.msg import ControlCommand, SafetyStatus, Trajectory, VlaPlan

from vla_autoware.interfaces import autoware_types
from vla_autoware.mirror import mirrored
from vla_autoware.trajectory import PlanarTransform, autoware_trajectory, placement
from vla_model.trajectory_messages import trajectory_arrays
from vla_perception.odometry import OdometrySample, yaw_of
from vla_perception.synchronizer import NS_PER_S, stamp_to_ns
from vla_planning.command_gate import HARD_LIMITS, LIMITS, GateLimits
from vla_planning.tracking_controller import (
    Command,
    ControllerConfig,
    EgoPose,
    StampedPath,
    TrackingController,
)
from vla_ros.diagnostics import ERROR, OK, WARN, diagnostic_array, diagnostic_status
from vla_ros.node_main import run_node, with_message_info
from vla_ros.parameters import ParameterSpec, declare_parameters
from vla_ros.qos import RELIABLE, SENSOR_DATA
from vla_ros.raw_messages import MalformedMessage, read_message
from vla_ros.stamps import to_time
from vla_ros.trusted_source import TrustedSource

DEFAULTS = ControllerConfig()
CONTROLLER_PARAMETERS = {  # name: (description with unit and source, minimum, maximum)
    'wheelbase_m': ('Front to rear axle, m.', 0.5, 10.0),
    'lookahead_time_s': ('Pure-pursuit lookahead per unit speed, s.', 0.0, 5.0),
    'min_lookahead_m': ('Shortest pure-pursuit lookahead, m (Autoware: 4.35).', 0.5, 50.0),
    'max_lookahead_m': ('Longest pure-pursuit lookahead, m.', 1.0, 200.0),
    'max_steering_tire_angle_rad': (
        'Largest road-wheel angle, rad (Autoware sample vehicle: 0.70).',
        0.05,
        1.5,
    ),
    'max_steering_rate_rps': (
        'Largest road-wheel angle rate, rad/s (half of Autoware vehicle_cmd_gate: 1.0).',
        0.01,
        10.0,
    ),
    'speed_kp': ('Speed error to acceleration, 1/s (Autoware PID: 1.0).', 0.0, 10.0),
    'speed_ki': ('Integrated speed error to acceleration, 1/s^2 (Autoware PID: 0.1).', 0.0, 10.0),
    'max_integral_mps2': ('Bound of the integral term, m/s^2 (Autoware PID: 0.3).', 0.0, 5.0),
    'max_acceleration_mps2': ('Largest acceleration, m/s^2 (ISO 15622: 2.0).', 0.1, 5.0),
    'min_acceleration_mps2': (
        'Strongest braking unless the trajectory brakes harder, m/s^2 (ISO 15622: -3.5).',
        -10.0,
        -0.1,
    ),
    'emergency_acceleration_mps2': (
        'Strongest braking when the trajectory brakes harder than min_acceleration, m/s^2 '
        '(Autoware MRM emergency stop, vehicle configuration: -6.0).',
        -15.0,
        -0.1,
    ),
    'emergency_jerk_mps3': (
        'Jerk limit when the trajectory brakes harder than min_acceleration, m/s^3 '
        '(Autoware MRM emergency stop, vehicle configuration: 20).',
        0.1,
        100.0,
    ),
    'max_jerk_mps3': ('Jerk limit, m/s^3 (Autoware vehicle_cmd_gate: 5.0).', 0.1, 100.0),
    'stop_acceleration_mps2': (
        'Braking of the stop commanded when tracking is impossible, m/s^2 '
        '(Autoware MRM emergency stop: -2.5).',
        -10.0,
        -0.1,
    ),
    'stop_jerk_mps3': ('Jerk of that stop, m/s^3 (Autoware MRM emergency stop: 1.5).', 0.1, 100.0),
    'standstill_acceleration_mps2': (
        'Brake hold at rest, m/s^2 (Autoware vehicle_cmd_gate stop_hold_acceleration: -1.5).',
        -10.0,
        -0.01,
    ),
    'standstill_speed_mps': ('Target and ego speed at or below: at rest, m/s.', 0.0, 1.0),
    'departure_distance_m': (
        'At rest, depart once the trajectory travels farther before its next stop, m '
        '(Autoware pid_longitudinal_controller drive_state_stop_dist: 0.5).',
        0.0,
        10.0,
    ),
    'trajectory_timeout_s': (
        'An older trajectory (by its stamp) is not followed: stop, s '
        '(Autoware planning validator: 1.0).',
        0.05,
        10.0,
    ),
    'odometry_timeout_s': (
        'Older odometry (by its stamp) is not used: stop, s (Autoware MRM handler: 0.5).',
        0.05,
        10.0,
    ),
}
GATE_PARAMETERS = {  # name: (description with unit and source, the lowest value allowed)
    'max_speed_mps': ('Largest commanded speed, m/s (UN R157: 130 km/h).', 1.0),
    'max_acceleration_mps2': ('Largest acceleration, m/s^2 (ISO 15622: 2.0).', 0.1),
    'min_acceleration_mps2': (
        'Strongest braking, m/s^2 (Autoware MRM emergency stop, vehicle configuration: -6.0).',
        -1.0,
    ),
    'max_jerk_mps3': (
        'Largest rise of the acceleration into driving force, m/s^3 '
        '(Autoware vehicle_cmd_gate lon_jerk_lim: 5.0).',
        0.1,
    ),
    'max_brake_release_jerk_mps3': (
        'Largest rise of the acceleration while still braking, m/s^3 '
        '(Autoware MRM emergency stop, vehicle configuration: 20).',
        0.1,
    ),
    'max_steering_tire_angle_rad': (
        'Largest road-wheel angle, rad (Autoware sample vehicle: 0.70).',
        0.05,
    ),
    'max_steering_rate_rps': (
        'Largest road-wheel angle rate, rad/s (Autoware vehicle_cmd_gate: 0.8 at 30 m/s).',
        0.01,
    ),
}
PARAMETERS = [
    ParameterSpec('control_rate_hz', 30.0, 'Rate of vla/control_command, Hz.', 1.0, 200.0),
    ParameterSpec('odometry_topic', '/localization/kinematic_state', 'nav_msgs/Odometry input.'),
    ParameterSpec(
        'autoware',
        False,
        "true: also publish the trajectory and the command in Autoware's types (the Autoware "
        "message packages must be installed); false: publish nothing of Autoware's.",
    ),
    ParameterSpec(
        'autoware_trajectory_topic',
        '/planning/scenario_planning/trajectory',
        'autoware_planning_msgs/Trajectory output when autoware is true.',
    ),
    ParameterSpec(
        'autoware_control_topic',
        '/control/trajectory_follower/control_cmd',
        'autoware_control_msgs/Control output when autoware is true; empty: planner only '
        "(Autoware's own trajectory follower drives).",
    ),
    ParameterSpec(
        'autoware_frame_id', 'map', "Frame of the Autoware trajectory's poses (Autoware: map)."
    ),
    ParameterSpec(
        'map_from_odometry.declared',
        False,
        'true: the odometry frame lies in autoware_frame_id as given by x_m, y_m, yaw_rad; '
        'false: only a trajectory already in autoware_frame_id is published to Autoware.',
    ),
    ParameterSpec(
        'map_from_odometry.x_m', 0.0, 'Odometry frame origin in autoware_frame_id, m.', -1e7, 1e7
    ),
    ParameterSpec(
        'map_from_odometry.y_m', 0.0, 'Odometry frame origin in autoware_frame_id, m.', -1e7, 1e7
    ),
    ParameterSpec(
        'map_from_odometry.yaw_rad',
        0.0,
        'Odometry frame heading in autoware_frame_id, rad.',
        -3.1416,
        3.1416,
    ),
    ParameterSpec(
        'trajectory_source',
        'safety_monitor_node',
        "The node whose vla/trajectory is followed (relative to this node's namespace, or "
        'absolute); trajectories from any other publisher are refused and counted. Empty: any '
        'publisher (only for a stack without the safety monitor).',
    ),
    *(
        ParameterSpec(name, getattr(DEFAULTS, name), description, minimum, maximum)
        for name, (description, minimum, maximum) in CONTROLLER_PARAMETERS.items()
    ),
    *(
        ParameterSpec(
            f'gate.{name}',
            getattr(HARD_LIMITS, name),
            f'{description} A hard limit of the last gate: may be lowered, never raised.',
            *sorted((getattr(HARD_LIMITS, name), lowest)),
        )
        for name, (description, lowest) in GATE_PARAMETERS.items()
    ),
]
MARKER_PERIOD_S = 0.1
DIAGNOSTICS_PERIOD_S = 1.0
REFUSAL_LOG_PERIOD_S = 5.0

GREEN, YELLOW, ORANGE, RED = (
    ColorRGBA(r=0.1, g=0.8, b=0.2, a=1.0),
    ColorRGBA(r=1.0, g=0.85, b=0.0, a=1.0),
    ColorRGBA(r=1.0, g=0.5, b=0.0, a=1.0),
    ColorRGBA(r=0.9, g=0.1, b=0.1, a=1.0),
)
SEVERITY_COLOURS = (GREEN, YELLOW, ORANGE, RED)
ORIGINS = {  # origin: (label, severity: an index into SEVERITY_COLOURS)
    Trajectory.ORIGIN_MODEL: ('model', 0),
    Trajectory.ORIGIN_MODEL_SPEED_CLAMPED: ('speed clamped', 1),
    Trajectory.ORIGIN_HELD_PLAN: ('held plan', 2),
    Trajectory.ORIGIN_COMFORTABLE_STOP: ('comfortable stop', 3),
    Trajectory.ORIGIN_EMERGENCY_STOP: ('emergency stop', 3),
}
STATES = {  # SafetyStatus.state: (name, severity)
    SafetyStatus.STATE_NOMINAL: ('NOMINAL', 0),
    SafetyStatus.STATE_DEGRADED: ('DEGRADED', 1),
    SafetyStatus.STATE_OVERRIDE: ('OVERRIDE', 2),
    SafetyStatus.STATE_MINIMAL_RISK: ('MINIMAL_RISK', 3),
}


def controller_config(params: dict[str, object]) -> ControllerConfig:
    """Build the controller's configuration from the node's parameter values."""
    return ControllerConfig(**{f.name: params[f.name] for f in fields(ControllerConfig)})


def gate_limits(params: dict[str, object]) -> GateLimits:
    """Build the gate's limits from the node's `gate.*` parameters (defaults: the hard ones)."""
    return GateLimits(
        **{
            name: params.get(f'gate.{name}', getattr(HARD_LIMITS, name))
            for name in GATE_PARAMETERS
        }
    )


def stamped_path(message: Trajectory) -> StampedPath:
    """Convert a Trajectory to the controller's arrays (its own frame, times from its stamp)."""
    times, poses, speeds = trajectory_arrays(message)
    points = message.points
    return StampedPath(
        stamp_s=stamp_to_ns(message.header.stamp) / NS_PER_S,
        times_s=times,
        x=poses[:, 0],
        y=poses[:, 1],
        yaw=poses[:, 2],
        speed=speeds,
        acceleration=np.fromiter((p.acceleration_mps2 for p in points), float, len(points)),
    )


def ego_pose(message: Odometry) -> EgoPose:
    """Validate an Odometry (pose in its frame, twist in base_link) and convert it.

    Raises ValueError, naming the problem, for non-finite values or a non-unit quaternion.
    """
    sample = OdometrySample.from_message(message)
    return EgoPose(
        x=float(sample.position[0]),
        y=float(sample.position[1]),
        yaw=yaw_of(message.pose.pose.orientation),
        speed=float(sample.linear_velocity[0]),
        stamp_s=sample.stamp_ns / NS_PER_S,
    )


def control_step(
    controller: TrackingController,
    now_s: float,
    trajectory: Trajectory | None,
    path: StampedPath | None,
    ego: EgoPose | None,
    odometry_frame: str,
) -> Command:
    """Follow `path` (`trajectory` converted), or stop when it is not in the odometry frame.

    The controller compares the path's positions with the ego's, so both must be in one frame.
    """
    problem = frame_problem(trajectory, ego, odometry_frame)
    if problem is not None:
        return controller.stop(now_s, problem)
    return controller.step(now_s, ego, path)


def frame_problem(
    trajectory: Trajectory | None, ego: EgoPose | None, odometry_frame: str
) -> str | None:
    """Return why `trajectory` is not in the odometry's frame, or None (also without inputs)."""
    if trajectory is not None and ego is not None and trajectory.header.frame_id != odometry_frame:
        return (
            f'trajectory frame {trajectory.header.frame_id!r} is not the odometry frame '
            f'{odometry_frame!r}'
        )
    return None


class ControlFeed:
    """The controller's input callbacks and the step its control timer runs.

    The node and the offline replay share it, so a trajectory is followed, and a malformed
    odometry message dropped, the same way in both.
    """

    def __init__(self, controller: TrackingController) -> None:
        self.controller = controller
        self.trajectory: Trajectory | None = None
        self.path: StampedPath | None = None
        self.ego: EgoPose | None = None
        self.odometry_frame = self.base_frame = ''

    def take_trajectory(self, message: Trajectory) -> None:
        """Take the safety monitor's trajectory: followed from the next step on."""
        self.trajectory, self.path = message, stamped_path(message)

    def take_odometry(self, message: Odometry) -> None:
        """Take odometry; a malformed one raises ValueError (ego_pose) and changes nothing."""
        self.ego = ego_pose(message)
        self.odometry_frame = message.header.frame_id
        self.base_frame = message.child_frame_id

    def problem(self, now_ns: int) -> str | None:
        """Return why the latest trajectory would not be tracked at `now_ns`, or None."""
        return frame_problem(self.trajectory, self.ego, self.odometry_frame) or (
            self.controller.problem(now_ns / NS_PER_S, self.ego, self.path)
        )

    def step(self, now_ns: int) -> Command:
        """Return the command for `now_ns` (the node's clock) from the latest inputs."""
        return control_step(
            self.controller,
            now_ns / NS_PER_S,
            self.trajectory,
            self.path,
            self.ego,
            self.odometry_frame,
        )


def path_message(message: Trajectory) -> Path:
    """Return the trajectory's poses as a nav_msgs/Path in its frame and at its stamp."""
    path = Path(header=message.header)
    path.poses = [PoseStamped(header=message.header, pose=point.pose) for point in message.points]
    return path


def control_command_message(command: Command, stamp: Time) -> ControlCommand:
    """Fill a ControlCommand (autoware_control_msgs/Control's fields) from a controller command."""
    message = ControlCommand(stamp=stamp)
    lateral, longitudinal = message.lateral, message.longitudinal
    lateral.stamp = longitudinal.stamp = stamp
    lateral.steering_tire_angle = command.steering_tire_angle_rad
    lateral.steering_tire_rotation_rate = command.steering_rate_rps
    lateral.is_defined_steering_tire_rotation_rate = True
    longitudinal.velocity = command.velocity_mps
    longitudinal.acceleration = command.acceleration_mps2
    longitudinal.jerk = command.jerk_mps3
    longitudinal.is_defined_acceleration = longitudinal.is_defined_jerk = True
    return message


def display_state(
    trajectory: Trajectory | None, status: SafetyStatus | None, command: Command | None
) -> tuple[str, ColorRGBA]:
    """Return the line describing what the vehicle is doing, and the colour of its severity.

    The colour is the most severe of the trajectory's origin, the monitor's state, and this
    node's own stop: green nominal, yellow speed clamped, orange held plan, red any stop.
    """
    parts, severity = [], 0
    if status is not None:
        name, level = STATES.get(status.state, (f'state {status.state}', 3))
        parts.append(name + (' (hazard lights)' if status.hazard_lights else ''))
        severity = max(severity, level)
    if trajectory is not None:
        label, level = ORIGINS.get(trajectory.origin, (f'origin {trajectory.origin}', 3))
        parts.append(label)
        severity = max(severity, level)
    if command is not None:
        parts.append(f'control: {command.reason}')
        severity = max(severity, 3 if command.stopping else 0)
    return ' | '.join(parts) or 'waiting for inputs', SEVERITY_COLOURS[severity]


def marker(header: Header, ns: str, marker_id: int, kind: int, colour: ColorRGBA) -> Marker:
    """Return a marker to add, with an identity pose (RViz warns about a zero quaternion)."""
    message = Marker(header=header, ns=ns, id=marker_id, type=kind, action=Marker.ADD)
    message.pose.orientation.w = 1.0
    message.color = colour
    return message


def line_strip(
    header: Header, ns: str, marker_id: int, poses: list[Pose], width_m: float, colour: ColorRGBA
) -> Marker:
    """Return a LINE_STRIP through the positions of `poses`, `width_m` wide."""
    message = marker(header, ns, marker_id, Marker.LINE_STRIP, colour)
    message.scale.x = width_m
    message.points = [Point(x=p.position.x, y=p.position.y, z=p.position.z) for p in poses]
    return message


def marker_array(
    trajectory: Trajectory | None,
    status: SafetyStatus | None,
    plan: VlaPlan | None,
    command: Command | None,
    base_frame: str,
) -> MarkerArray:
    """Return the markers of one display cycle, after a DELETEALL so that stale ones vanish.

    The published trajectory as a coloured line strip (display_state), the model's candidates
    as thin grey strips whose opacity follows their score (in base_link at the plan's stamp,
    as the plan gives them), and a text above the vehicle with the state and the rationale.
    """
    text, colour = display_state(trajectory, status, command)
    markers = [Marker(action=Marker.DELETEALL)]
    if trajectory is not None:
        markers.append(
            line_strip(
                trajectory.header,
                'trajectory',
                0,
                [point.pose for point in trajectory.points],
                0.3,
                colour,
            )
        )
    if plan is not None:
        scores = np.asarray(plan.candidate_scores, dtype=np.float64)
        best = float(np.max(scores)) if len(scores) else 0.0
        for index, candidate in enumerate(plan.candidates):
            score = float(scores[index]) if index < len(scores) else 0.0
            alpha = 0.15 + 0.85 * (score / best if best > 0.0 and np.isfinite(score) else 0.0)
            grey = ColorRGBA(r=0.6, g=0.6, b=0.6, a=float(np.clip(alpha, 0.15, 1.0)))
            markers.append(
                line_strip(
                    plan.header,
                    'candidates',
                    index,
                    [point.pose for point in candidate.points],
                    0.08,
                    grey,
                )
            )
        if plan.rationale:
            text += f'\n{plan.rationale}'
    label = marker(
        Header(frame_id=base_frame), 'state', 0, Marker.TEXT_VIEW_FACING, colour
    )  # stamp zero: RViz draws it at the newest transform
    label.pose.position.z = 2.5
    label.scale.z = 0.6  # text height, m
    label.text = text
    markers.append(label)
    return MarkerArray(markers=markers)


def map_from_odometry(params: dict[str, object]) -> PlanarTransform | None:
    """Return the declared transform of the odometry frame in Autoware's frame, if declared."""
    if not params['map_from_odometry.declared']:
        return None
    return PlanarTransform(
        params['map_from_odometry.x_m'],
        params['map_from_odometry.y_m'],
        params['map_from_odometry.yaw_rad'],
    )


class AutowareOutput:
    """The trajectory and the command in Autoware's types, on Autoware's topics (opt-in).

    A trajectory goes out only when this node would track it (same frame as the odometry,
    fresh, valid) and its poses can be placed in Autoware's frame; otherwise it is counted and
    a warning (at most one per 5 s) says why.
    """

    def __init__(self, node: Node, params: dict[str, object]) -> None:
        self.node = node
        self.types = autoware_types()  # ValueError (exit 1, one line) when not installed
        self.frame = params['autoware_frame_id']
        self.transform = map_from_odometry(params)
        self.trajectory_publisher = node.create_publisher(
            self.types.Trajectory, params['autoware_trajectory_topic'], RELIABLE
        )
        control_topic = params['autoware_control_topic']
        self.control_publisher = (
            node.create_publisher(self.types.Control, control_topic, RELIABLE)
            if control_topic
            else None
        )
        self.published = self.refused = 0
        self.last_refusal = 'none'
        self.state = (
            f'on: trajectory on {params["autoware_trajectory_topic"]} in {self.frame!r}, '
            + (f'control on {control_topic}' if control_topic else 'planner only (no control)')
        )

    def trajectory(self, message: Trajectory, problem: str | None, feed: ControlFeed) -> None:
        """Publish `message` in Autoware's frame unless `problem` or its frame forbids it."""
        try:
            if problem is not None:
                raise ValueError(f'not tracked: {problem}')
            transform = placement(
                message.header.frame_id, feed.odometry_frame, self.frame, self.transform
            )
        except ValueError as error:
            self.refused += 1
            self.last_refusal = str(error)
            self.node.get_logger().warning(
                f'trajectory not published to Autoware: {error}',
                throttle_duration_sec=REFUSAL_LOG_PERIOD_S,
            )
            return
        self.trajectory_publisher.publish(
            autoware_trajectory(
                message, self.types.Trajectory, self.types.TrajectoryPoint, self.frame, transform
            )
        )
        self.published += 1

    def control(self, message: ControlCommand) -> None:
        """Publish the command as autoware_control_msgs/Control (unless planner only)."""
        if self.control_publisher is not None:
            self.control_publisher.publish(mirrored(message, self.types.Control))

    def values(self) -> dict[str, object]:
        """Return the adapter's counts for the diagnostics."""
        return {
            'autoware_trajectories_published': self.published,
            'autoware_trajectories_refused': self.refused,
            'autoware_last_refusal': self.last_refusal,
        }


class TrajectoryOutputNode(Node):
    """Publish the safe trajectory for display, and a control command that follows it."""

    def __init__(self, **kwargs) -> None:
        super().__init__('trajectory_output_node', **kwargs)
        params = declare_parameters(self, PARAMETERS)
        config = controller_config(params)
        self.feed = ControlFeed(TrackingController(config, gate_limits(params)))
        self.source = TrustedSource(self, 'vla/trajectory', params['trajectory_source'])
        self._gate_clamps = 0
        self._timeout_ns = round(config.trajectory_timeout_s * NS_PER_S)
        self._status: SafetyStatus | None = None
        self._plan: object | None = None  # the newest VlaPlan, read from its bytes
        self._command: Command | None = None
        self.trajectories = self.odometry_rejected = self._commands_in_period = 0
        self._markers_in_period = 0
        self._cross_track_m: list[float] = []

        self.path_publisher = self.create_publisher(Path, 'vla/path', RELIABLE)
        self.marker_publisher = self.create_publisher(MarkerArray, 'vla/markers', RELIABLE)
        self.command_publisher = self.create_publisher(
            ControlCommand, 'vla/control_command', RELIABLE
        )
        self.diagnostics_publisher = self.create_publisher(
            DiagnosticArray, '/diagnostics', RELIABLE
        )
        self.autoware = AutowareOutput(self, params) if params['autoware'] else None
        self.autoware_adapter = self.autoware.state if self.autoware else 'off: autoware is false'
        self.create_subscription(
            Trajectory, 'vla/trajectory', with_message_info(self._on_trajectory), RELIABLE
        )
        self.create_subscription(SafetyStatus, 'vla/safety_status', self._on_status, RELIABLE)
        self.create_subscription(VlaPlan, 'vla/plan', self._on_plan, RELIABLE, raw=True)
        self.create_subscription(
            Odometry, params['odometry_topic'], self._on_odometry, SENSOR_DATA
        )
        self.create_timer(1.0 / params['control_rate_hz'], self._control)
        self.create_timer(MARKER_PERIOD_S, self._publish_markers)
        self.create_timer(DIAGNOSTICS_PERIOD_S, self._publish_diagnostics)
        self.get_logger().info(
            f'following vla/trajectory at {params["control_rate_hz"]} Hz with odometry from '
            f'{params["odometry_topic"]}; Autoware trajectory adapter {self.autoware_adapter}'
        )

    def _now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def _on_trajectory(self, message: Trajectory, info: MessageInfo) -> None:
        sender = self.source.refusal(info)
        if sender is not None:
            self.get_logger().warning(
                f'trajectory refused: from {sender}, not the trusted {self.source.trusted} '
                f'({self.source.refused} refused)',
                throttle_duration_sec=REFUSAL_LOG_PERIOD_S,
            )
            return
        self.feed.take_trajectory(message)
        self.trajectories += 1
        self.path_publisher.publish(path_message(message))
        if self.autoware is not None:
            self.autoware.trajectory(message, self.feed.problem(self._now_ns()), self.feed)

    def _on_status(self, message: SafetyStatus) -> None:
        self._status = message

    def _drawn(self) -> bool:
        return self.marker_publisher.get_subscription_count() > 0

    def _on_plan(self, raw: bytes) -> None:
        if not self._drawn():
            return  # the plan is only drawn (the safety monitor judges it)
        try:
            self._plan = read_message(raw, VlaPlan, native={Header})
        except MalformedMessage as error:
            self.get_logger().warning(
                f'plan refused: {error}', throttle_duration_sec=REFUSAL_LOG_PERIOD_S
            )

    def _on_odometry(self, message: Odometry) -> None:
        try:
            self.feed.take_odometry(message)
        except ValueError as error:
            self.odometry_rejected += 1
            self.get_logger().warning(f'odometry dropped: {error}', throttle_duration_sec=5.0)

    def _control(self) -> None:
        now_ns = self._now_ns()
        command = self.feed.step(now_ns)
        message = control_command_message(command, to_time(now_ns))
        self.command_publisher.publish(message)
        if self.autoware is not None:
            self.autoware.control(message)
        previous, self._command = self._command, command
        self._commands_in_period += 1
        gate = self.feed.controller.gate
        clamps = sum(gate.clamped.values())
        if clamps > self._gate_clamps:
            self._gate_clamps = clamps
            self.get_logger().warning(
                f'command gated: {gate.last_clamp} ({clamps} gated)',
                throttle_duration_sec=REFUSAL_LOG_PERIOD_S,
            )
        if not command.stopping:
            self._cross_track_m.append(abs(command.cross_track_error_m))
        if command.stopping and (previous is None or not previous.stopping):
            self.get_logger().warning(f'stopping: {command.reason}')
        elif not command.stopping and previous is not None and previous.stopping:
            self.get_logger().info('tracking the trajectory again')

    def _fresh_plan(self) -> object | None:
        plan = self._plan
        if plan is None or self._now_ns() - stamp_to_ns(plan.header.stamp) > self._timeout_ns:
            return None
        return plan

    def _publish_markers(self) -> None:
        if not self._drawn():
            return
        self._markers_in_period += 1
        self.marker_publisher.publish(
            marker_array(
                self.feed.trajectory,
                self._status,
                self._fresh_plan(),
                self._command,
                self.feed.base_frame or 'base_link',
            )
        )

    def _publish_diagnostics(self) -> None:
        now_ns = self._now_ns()
        command = self._command
        commands, self._commands_in_period = self._commands_in_period, 0
        markers, self._markers_in_period = self._markers_in_period, 0
        errors, self._cross_track_m = self._cross_track_m, []
        if command is not None and not command.stopping:
            level = OK
        elif self.feed.trajectory is None or self.feed.ego is None:
            level = WARN  # starting: not every input has arrived yet
        else:
            level = ERROR
        feed, now_s = self.feed, now_ns / NS_PER_S
        trajectory = feed.trajectory
        values = {
            'reason': command.reason if command else 'no command yet',
            'rate_hz': commands / DIAGNOSTICS_PERIOD_S,
            'marker_rate_hz': markers / DIAGNOSTICS_PERIOD_S,  # 0 while nothing subscribes
            'trajectories_received': self.trajectories,
            'trajectory_origin': (
                ORIGINS.get(trajectory.origin, ('unknown', 3))[0] if trajectory else 'none'
            ),
            'trajectory_age_s': now_s - feed.path.stamp_s if feed.path else float('inf'),
            'odometry_age_s': now_s - feed.ego.stamp_s if feed.ego else float('inf'),
            'odometry_rejected': self.odometry_rejected,
            'trajectory_source': self.source.trusted or 'any',
            'trajectories_refused': self.source.refused,
            'last_refused_source': self.source.last_refused,
            **{f'gate_clamped_{limit}': feed.controller.gate.clamped[limit] for limit in LIMITS},
            'gate_last_clamp': feed.controller.gate.last_clamp,
            'steering_tire_angle_rad': command.steering_tire_angle_rad if command else 0.0,
            'velocity_mps': command.velocity_mps if command else 0.0,
            'acceleration_mps2': command.acceleration_mps2 if command else 0.0,
            'cross_track_error_m_mean': float(np.mean(errors)) if errors else float('nan'),
            'cross_track_error_m_max': float(np.max(errors)) if errors else float('nan'),
            'autoware_adapter': self.autoware_adapter,
            **(self.autoware.values() if self.autoware else {}),
        }
        self.diagnostics_publisher.publish(
            diagnostic_array(
                to_time(now_ns),
                [
                    diagnostic_status(
                        'trajectory_output_node: control',
                        'vla_ros',
                        level,
                        values['reason'],
                        values,
                    )
                ],
            )
        )


def main(args: list[str] | None = None) -> None:
    """Run trajectory_output_node until shut down."""
    run_node(TrajectoryOutputNode, 'trajectory_output_node', args, event_driven=True)


if __name__ == '__main__':
    main()
