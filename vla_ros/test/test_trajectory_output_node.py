"""trajectory_output_node over real DDS, as its own process; its message conversions alone.

The test plays the safety monitor (trajectory and status), the model (a plan with candidates)
and localisation (odometry), and checks what the node publishes: the path, the markers, the
control command, and the stop when trajectories stop arriving.
"""

import math
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import fields

import numpy as np
import pytest
from builtin_interfaces.msg import Duration, Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from nav_msgs.msg import Odometry, Path
from rcl_interfaces.msg import Log
from rclpy.node import Node
from rclpy.qos import QoSProfile
from rclpy.serialization import serialize_message
from visualization_msgs.msg import Marker, MarkerArray
from vla_msgs.msg import ControlCommand, SafetyStatus, Trajectory, TrajectoryPoint, VlaPlan

from repo_paths import REPO_ROOT
from vla_perception.synchronizer import stamp_to_ns, to_ns
from vla_planning.tracking_controller import Command, ControllerConfig
from vla_planning.trajectory_output_node import (
    CONTROLLER_PARAMETERS,
    GREEN,
    ORANGE,
    PARAMETERS,
    RED,
    YELLOW,
    display_state,
    stamped_path,
)
from vla_ros.qos import LATCHED, RELIABLE, SENSOR_DATA
from vla_ros.testing import RosHarness

TIMEOUT_S = 0.5


def left_curve(stamp, origin: int, radius: float = 40.0, speed: float = 10.0) -> Trajectory:
    """Return a 3 s trajectory in odom from the origin, turning left; time 0 at `stamp`."""
    message = Trajectory(origin=origin)
    message.header.stamp, message.header.frame_id = stamp, 'odom'
    for index in range(31):
        t = 0.1 * index
        theta = speed * t / radius
        point = TrajectoryPoint(longitudinal_velocity_mps=speed, heading_rate_rps=speed / radius)
        point.time_from_start = Duration(sec=int(t), nanosec=round((t % 1.0) * 1e9))
        point.pose.position.x = radius * math.sin(theta)
        point.pose.position.y = radius * (1.0 - math.cos(theta))
        point.pose.orientation.z, point.pose.orientation.w = (
            math.sin(theta / 2),
            math.cos(theta / 2),
        )
        message.points.append(point)
    return message


def plan_message(stamp) -> VlaPlan:
    plan = VlaPlan(rationale='keeping the lane', candidate_scores=[0.1, 0.7, 0.2])
    plan.header.stamp, plan.header.frame_id = stamp, 'base_link'
    for index in range(3):
        candidate = Trajectory()
        candidate.header = plan.header
        for step in range(1, 7):
            point = TrajectoryPoint()
            point.pose.position.x, point.pose.position.y = 5.0 * step, 0.3 * step * (index - 1)
            point.pose.orientation.w = 1.0
            candidate.points.append(point)
        plan.candidates.append(candidate)
    return plan


class World:
    """Plays the monitor, the model and localisation at their rates; records the node's output."""

    def __init__(self, node: Node, draw_markers: bool = True) -> None:
        self.node = node
        self.publishing_trajectories = True
        self.odometry_nan = False
        self.trajectory = node.create_publisher(Trajectory, '/vla/trajectory', RELIABLE)
        self.status = node.create_publisher(SafetyStatus, '/vla/safety_status', RELIABLE)
        self.plan = node.create_publisher(VlaPlan, '/vla/plan', RELIABLE)
        self.odometry = node.create_publisher(
            Odometry, '/localization/kinematic_state', SENSOR_DATA
        )
        self.sent: list[Trajectory] = []
        self.paths: list[Path] = []
        self.markers: list[MarkerArray] = []
        self.commands: list[ControlCommand] = []
        self.diagnostics: list[DiagnosticStatus] = []
        self.logs: list[Log] = []
        node.create_subscription(Path, '/vla/path', self.paths.append, RELIABLE)
        if draw_markers:
            self.draw_markers()
        node.create_subscription(
            ControlCommand, '/vla/control_command', self.commands.append, RELIABLE
        )
        node.create_subscription(
            DiagnosticArray,
            '/diagnostics',
            lambda array: self.diagnostics.extend(array.status),
            RELIABLE,
        )
        # Transient-local and deep enough for the start-up lines logged before discovery.
        rosout_qos = QoSProfile(
            depth=100, reliability=LATCHED.reliability, durability=LATCHED.durability
        )
        node.create_subscription(Log, '/rosout', self._on_log, rosout_qos)
        node.create_timer(0.1, self._publish_plan_and_trajectory)
        node.create_timer(0.02, self._publish_odometry)

    def draw_markers(self) -> None:
        """Subscribe to the markers, as RViz would."""
        self.node.create_subscription(MarkerArray, '/vla/markers', self.markers.append, RELIABLE)

    def _on_log(self, message: Log) -> None:
        if message.name == 'trajectory_output_node':
            self.logs.append(message)

    def _publish_plan_and_trajectory(self) -> None:
        stamp = self.node.get_clock().now().to_msg()
        self.plan.publish(plan_message(stamp))
        if not self.publishing_trajectories:
            return
        trajectory = left_curve(stamp, Trajectory.ORIGIN_HELD_PLAN)
        self.trajectory.publish(trajectory)
        self.sent.append(trajectory)
        status = SafetyStatus(
            state=SafetyStatus.STATE_OVERRIDE, trajectory_origin=Trajectory.ORIGIN_HELD_PLAN
        )
        status.header.stamp, status.header.frame_id = stamp, 'base_link'
        self.status.publish(status)

    def _publish_odometry(self) -> None:
        message = Odometry(child_frame_id='base_link')
        message.header.stamp = self.node.get_clock().now().to_msg()
        message.header.frame_id = 'odom'
        message.pose.pose.orientation.w = 1.0
        message.twist.twist.linear.x = math.nan if self.odometry_nan else 10.0
        self.odometry.publish(message)


@pytest.fixture
def node_process() -> Iterator[subprocess.Popen]:
    """Run the node as its own process; it must still run at the end and stop cleanly."""
    process = subprocess.Popen(
        [
            sys.executable,
            '-m',
            'vla_planning.trajectory_output_node',
            '--ros-args',
            '-p',
            f'trajectory_timeout_s:={TIMEOUT_S}',
            '-p',
            'trajectory_source:=/world',  # the test's node plays the safety monitor
        ]
    )
    yield process
    assert process.poll() is None, f'trajectory_output_node exited with {process.returncode}'
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=20) == 0


def by_namespace(array: MarkerArray) -> dict[str, list[Marker]]:
    result: dict[str, list[Marker]] = {}
    for marker in array.markers:
        result.setdefault(marker.ns, []).append(marker)
    return result


def colour(marker: Marker) -> tuple[float, float, float]:
    return (marker.color.r, marker.color.g, marker.color.b)


def rgb(colour_message) -> tuple[float, float, float]:
    return (colour_message.r, colour_message.g, colour_message.b)


def test_path_markers_command_and_a_stop_when_trajectories_stop(
    ros: RosHarness, node_process: subprocess.Popen
):
    world = World(ros.node('world'))
    assert ros.spin_until(
        lambda: world.paths and world.commands and world.markers and world.diagnostics, 15.0
    ), 'the node published nothing'
    assert ros.spin_until(lambda: len(world.commands) >= 30, 5.0)
    # The start-up log line can expire (rosout lifespan 10 s) before a loaded machine matches
    # this subscriber, so the adapter's state is read from the periodic diagnostics. Off unless
    # asked for, whether or not the Autoware packages are installed (test_autoware_adapters.py
    # runs it switched on, and checks it is silent on Autoware's topics when off).
    adapter = {v.key: v.value for v in world.diagnostics[-1].values}['autoware_adapter']
    assert adapter == 'off: autoware is false'

    # The path is the trajectory, pose for pose, in its frame and at its stamp.
    path = world.paths[-1]
    sent = next(t for t in world.sent if t.header.stamp == path.header.stamp)
    assert path.header.frame_id == 'odom'
    assert [p.pose for p in path.poses] == [p.pose for p in sent.points]

    # A held plan under OVERRIDE is orange; the candidates are grey, most opaque for the best.
    assert ros.spin_until(lambda: 'candidates' in by_namespace(world.markers[-1]), 3.0)
    markers = by_namespace(world.markers[-1])
    assert world.markers[-1].markers[0].action == Marker.DELETEALL
    (trajectory_marker,) = markers['trajectory']
    assert trajectory_marker.type == Marker.LINE_STRIP and colour(
        trajectory_marker
    ) == pytest.approx(rgb(ORANGE))
    assert trajectory_marker.header.frame_id == 'odom' and len(trajectory_marker.points) == 31
    candidates = markers['candidates']
    assert [c.header.frame_id for c in candidates] == ['base_link'] * 3
    assert max(candidates, key=lambda c: c.color.a).id == 1  # score 0.7
    (text,) = markers['state']
    assert 'OVERRIDE' in text.text and 'held plan' in text.text
    assert 'keeping the lane' in text.text

    # Steering left for a left curve, at the trajectory's speed.
    command = world.commands[-1]
    assert command.lateral.steering_tire_angle > 0.0
    assert command.lateral.steering_tire_angle == pytest.approx(math.atan(2.7 / 40.0), rel=0.3)
    assert command.longitudinal.velocity == pytest.approx(10.0)
    assert command.longitudinal.is_defined_acceleration

    # A malformed odometry message is dropped with a warning; the node goes on.
    world.odometry_nan = True
    assert ros.spin_until(lambda: any('odometry dropped' in log.msg for log in world.logs), 3.0)
    world.odometry_nan = False
    count = len(world.commands)
    assert ros.spin_until(lambda: len(world.commands) > count + 10, 3.0)
    assert node_process.poll() is None

    # Trajectories stop: after the timeout the command is a stop, braking, steering held.
    # Commands still queued from before (a stall of this busy process can stop the node early
    # too) are told apart by their stamps: wait for one stamped well past the timeout.
    world.publishing_trajectories = False
    settled_ns = stamp_to_ns(world.node.get_clock().now().to_msg()) + to_ns(TIMEOUT_S + 0.3)
    assert ros.spin_until(
        lambda: world.commands and stamp_to_ns(world.commands[-1].stamp) > settled_ns,
        TIMEOUT_S + 3.0,
    ), 'no command after the trajectories stopped'
    stop = world.commands[-1]
    assert stop.longitudinal.velocity == 0.0 and stop.longitudinal.acceleration < 0.0
    assert stop.lateral.steering_tire_angle == pytest.approx(
        command.lateral.steering_tire_angle, abs=0.02
    )
    assert stop.lateral.steering_tire_rotation_rate == 0.0
    assert ros.spin_until(
        lambda: (
            colour(by_namespace(world.markers[-1])['trajectory'][0]) == pytest.approx(rgb(RED))
        ),
        2.0,
    )
    assert ros.spin_until(
        lambda: any(log.msg.startswith('stopping: trajectory is') for log in world.logs), 2.0
    )
    assert ros.spin_until(lambda: world.diagnostics[-1].level == DiagnosticStatus.ERROR, 2.0), (
        world.diagnostics[-1]
    )
    assert 'old' in world.diagnostics[-1].message


def straight_ahead(stamp, speed: float) -> Trajectory:
    """Return a 3 s trajectory in odom along x at `speed`; time 0 at `stamp`."""
    message = Trajectory(origin=Trajectory.ORIGIN_MODEL)
    message.header.stamp, message.header.frame_id = stamp, 'odom'
    for index in range(31):
        t = 0.1 * index
        point = TrajectoryPoint(longitudinal_velocity_mps=speed)
        point.time_from_start = Duration(sec=int(t), nanosec=round((t % 1.0) * 1e9))
        point.pose.position.x = speed * t
        point.pose.orientation.w = 1.0
        message.points.append(point)
    return message


def test_a_malformed_plan_is_refused_with_the_reason_and_the_last_one_kept(
    ros: RosHarness, node_process: subprocess.Popen
):
    world = World(ros.node('world'))
    assert ros.spin_until(
        lambda: world.markers and 'candidates' in by_namespace(world.markers[-1]), 15.0
    )
    stamp = world.node.get_clock().now().to_msg()
    world.plan.publish(serialize_message(plan_message(stamp))[:-50])
    assert ros.spin_until(
        lambda: any(log.msg.startswith('plan refused: truncated: ') for log in world.logs), 5.0
    ), [log.msg for log in world.logs]
    assert node_process.poll() is None
    count = len(world.markers)
    assert ros.spin_until(lambda: len(world.markers) > count + 2, 3.0)
    assert len(by_namespace(world.markers[-1])['candidates']) == 3


def test_markers_are_built_only_while_something_subscribes(
    ros: RosHarness, node_process: subprocess.Popen
):
    world = World(ros.node('world'), draw_markers=False)

    def values() -> dict[str, str]:
        return {v.key: v.value for v in world.diagnostics[-1].values} if world.diagnostics else {}

    # Two diagnostics periods with trajectories followed and nothing drawn.
    assert ros.spin_until(lambda: float(values().get('rate_hz', 0)) > 0, 15.0)
    seen = len(world.diagnostics)
    assert ros.spin_until(lambda: len(world.diagnostics) >= seen + 2, 5.0)
    rates = [
        float(v.value)
        for d in world.diagnostics[seen:]
        for v in d.values
        if v.key == 'marker_rate_hz'
    ]
    assert rates == [0.0, 0.0]
    world.draw_markers()
    assert ros.spin_until(
        lambda: world.markers and 'candidates' in by_namespace(world.markers[-1]), 5.0
    )
    assert ros.spin_until(lambda: float(values()['marker_rate_hz']) >= 5.0, 5.0)


def test_trajectories_of_any_other_publisher_are_refused_by_name(
    ros: RosHarness, node_process: subprocess.Popen
):
    # A second publisher on vla/trajectory asks for 60 m/s at 50 Hz, as in issue 21; the node
    # trusts only /world (its trajectory_source), which plays the monitor at 10 m/s.
    world = World(ros.node('world'))
    rogue_node = ros.node('rogue')
    rogue = rogue_node.create_publisher(Trajectory, '/vla/trajectory', RELIABLE)
    rogue_node.create_timer(
        0.02, lambda: rogue.publish(straight_ahead(rogue_node.get_clock().now().to_msg(), 60.0))
    )
    assert ros.spin_until(
        lambda: any('trajectory refused: from /rogue' in log.msg for log in world.logs), 15.0
    ), 'no warning about the rogue publisher'
    assert ros.spin_until(lambda: len(world.commands) >= 60, 5.0)

    def values() -> dict[str, str]:
        return {v.key: v.value for v in world.diagnostics[-1].values}

    assert ros.spin_until(lambda: int(values()['trajectories_refused']) > 10, 3.0)
    assert values()['last_refused_source'] == '/rogue'
    assert values()['trajectory_source'] == '/world'
    # Only the trusted trajectories are followed and shown: 10 m/s, never the rogue's 60.
    assert max(c.longitudinal.velocity for c in world.commands) == pytest.approx(10.0)
    sent = {(t.header.stamp.sec, t.header.stamp.nanosec) for t in world.sent}
    assert all((p.header.stamp.sec, p.header.stamp.nanosec) in sent for p in world.paths)
    # The trusted source goes silent: the node stops, whatever the rogue still sends.
    world.publishing_trajectories = False
    settled_ns = stamp_to_ns(world.node.get_clock().now().to_msg()) + to_ns(TIMEOUT_S + 0.3)
    assert ros.spin_until(
        lambda: stamp_to_ns(world.commands[-1].stamp) > settled_ns, TIMEOUT_S + 3.0
    )
    stop = world.commands[-1]
    assert stop.longitudinal.velocity == 0.0 and stop.longitudinal.acceleration < 0.0


def test_an_inconsistent_configuration_ends_the_process_with_the_reason():
    result = subprocess.run(
        [
            sys.executable,
            '-m',
            'vla_planning.trajectory_output_node',
            '--ros-args',
            '-p',
            'min_lookahead_m:=40.0',
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert 'min_lookahead_m <= max_lookahead_m' in result.stderr


def test_every_controller_setting_is_a_documented_parameter():
    assert set(CONTROLLER_PARAMETERS) == {f.name for f in fields(ControllerConfig)}
    documented = (REPO_ROOT / 'docs' / 'TRAJECTORY_OUTPUT.md').read_text(encoding='utf-8')
    assert [spec.name for spec in PARAMETERS if f'| `{spec.name}` |' not in documented] == []


def test_a_trajectory_message_becomes_the_controller_arrays():
    message = left_curve(Time(sec=100, nanosec=500_000_000), Trajectory.ORIGIN_MODEL)
    path = stamped_path(message)
    assert path.stamp_s == 100.5
    assert path.times_s == pytest.approx(np.arange(31) * 0.1)
    assert path.yaw == pytest.approx(10.0 * path.times_s / 40.0)
    assert path.x[-1] == pytest.approx(40.0 * math.sin(0.75))
    assert np.all(path.speed == 10.0)
    empty = stamped_path(Trajectory())
    assert len(empty.times_s) == len(empty.x) == len(empty.yaw) == 0


def stop_command(reason: str, stopping: bool) -> Command:
    return Command(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, stopping, reason)


@pytest.mark.parametrize(
    ('state', 'origin', 'stopping', 'expected'),
    [
        (SafetyStatus.STATE_NOMINAL, Trajectory.ORIGIN_MODEL, False, GREEN),
        (SafetyStatus.STATE_DEGRADED, Trajectory.ORIGIN_MODEL_SPEED_CLAMPED, False, YELLOW),
        (SafetyStatus.STATE_OVERRIDE, Trajectory.ORIGIN_HELD_PLAN, False, ORANGE),
        (SafetyStatus.STATE_MINIMAL_RISK, Trajectory.ORIGIN_COMFORTABLE_STOP, False, RED),
        (SafetyStatus.STATE_MINIMAL_RISK, Trajectory.ORIGIN_EMERGENCY_STOP, False, RED),
        (SafetyStatus.STATE_NOMINAL, Trajectory.ORIGIN_MODEL, True, RED),  # this node stops
        (SafetyStatus.STATE_DEGRADED, Trajectory.ORIGIN_MODEL, False, YELLOW),  # most severe
        (SafetyStatus.STATE_NOMINAL, 77, False, RED),  # an unknown origin is not trusted
    ],
)
def test_the_colour_is_the_most_severe_of_origin_state_and_control(
    state, origin, stopping, expected
):
    text, colour_message = display_state(
        Trajectory(origin=origin),
        SafetyStatus(state=state),
        stop_command('no trajectory' if stopping else 'tracking', stopping),
    )
    assert colour_message == expected and text
