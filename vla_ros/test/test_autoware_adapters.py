"""The Autoware adapters against the real autoware_msgs 1.12.0 types: conversions, and over DDS.

Autoware's interface packages come from ../shared/autoware-msgs (scripts/setup.sh builds them;
without it these tests skip saying so). The DDS tests run the real nodes as processes with
`autoware:=true` and read what they publish on Autoware's topics in Autoware's types.
"""

import math
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest

from repo_paths import require_autoware_msgs, tool
from test_safety_monitor_node import SPEED, straight_plan

require_autoware_msgs()

from autoware_control_msgs.msg import Control  # noqa: E402
from autoware_perception_msgs.msg import (  # noqa: E402
    ObjectClassification,
    PredictedObject,
    PredictedObjects,
    Shape,
)
from autoware_planning_msgs.msg import Trajectory as AutowareTrajectory  # noqa: E402
from autoware_planning_msgs.msg import TrajectoryPoint as AutowarePoint  # noqa: E402
from autoware_system_msgs.msg import HazardStatus, HazardStatusStamped  # noqa: E402
from autoware_vehicle_msgs.msg import HazardLightsCommand  # noqa: E402
from builtin_interfaces.msg import Duration, Time  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from geometry_msgs.msg import Point32  # noqa: E402
from nav_msgs.msg import Odometry  # noqa: E402
from rcl_interfaces.msg import Log  # noqa: E402
from rclpy.serialization import serialize_message  # noqa: E402
from vla_msgs.msg import (  # noqa: E402
    ControlCommand,
    InputStatus,
    Obstacle,
    SafetyCheck,
    SafetyStatus,
    SensorStatus,
    Trajectory,
    TrajectoryPoint,
    VlaPlan,
)

from vla_autoware.mirror import mirrored  # noqa: E402
from vla_autoware.monitor_state import hazard_lights_command, hazard_status  # noqa: E402
from vla_autoware.objects import obstacle_array  # noqa: E402
from vla_autoware.trajectory import PlanarTransform, autoware_trajectory, placement  # noqa: E402
from vla_perception.odometry import yaw_of  # noqa: E402
from vla_planning.safety_monitor import MonitorConfig, SafetyMonitor  # noqa: E402
from vla_planning.safety_monitor_node import MonitorFeed  # noqa: E402
from vla_ros.cdr import sequence_length_after_header  # noqa: E402
from vla_ros.qos import LATCHED, RELIABLE, SENSOR_DATA  # noqa: E402
from vla_ros.testing import RosHarness  # noqa: E402

NS = 1_000_000_000
AUTOWARE_TRAJECTORY_TOPIC = '/planning/scenario_planning/trajectory'
AUTOWARE_CONTROL_TOPIC = '/control/trajectory_follower/control_cmd'
OBJECTS_TOPIC = '/perception/object_recognition/objects'
HAZARD_STATUS_TOPIC = '/system/emergency/hazard_status'
HAZARD_LIGHTS_TOPIC = '/system/emergency/hazard_lights_cmd'
POINT_FIELDS = list(AutowarePoint.get_fields_and_field_types())


def curve(stamp: Time, frame_id: str, x0: float = 0.0) -> Trajectory:
    """Return a 3 s left curve at 10 m/s from (x0, 0), every field of every point distinct."""
    message = Trajectory(origin=Trajectory.ORIGIN_MODEL)
    message.header.stamp, message.header.frame_id = stamp, frame_id
    for index in range(31):
        t, theta = 0.1 * index, 0.025 * index
        point = TrajectoryPoint(
            longitudinal_velocity_mps=10.0 + 0.01 * index,
            lateral_velocity_mps=0.001 * index,
            acceleration_mps2=-0.02 * index,
            heading_rate_rps=0.25,
            front_wheel_angle_rad=0.003 * index,
            rear_wheel_angle_rad=-0.001 * index,
        )
        point.time_from_start = Duration(sec=int(t), nanosec=round((t % 1.0) * 1e9))
        point.pose.position.x = x0 + 40.0 * math.sin(theta)
        point.pose.position.y = 40.0 * (1.0 - math.cos(theta))
        point.pose.orientation.z, point.pose.orientation.w = (
            math.sin(theta / 2),
            math.cos(theta / 2),
        )
        message.points.append(point)
    return message


# --- conversions ------------------------------------------------------------------------------


def test_a_map_trajectory_is_copied_field_by_field_into_autoware_s_type():
    message = curve(Time(sec=3, nanosec=5), 'map')
    transform = placement('map', 'map', 'map', None)
    converted = autoware_trajectory(message, AutowareTrajectory, AutowarePoint, 'map', transform)
    assert isinstance(converted, AutowareTrajectory)
    assert converted.header.frame_id == 'map' and converted.header.stamp == message.header.stamp
    assert len(converted.points) == 31
    for original, copy in zip(message.points, converted.points, strict=True):
        assert isinstance(copy, AutowarePoint)
        for name in POINT_FIELDS:
            assert getattr(copy, name) == getattr(original, name), name


def test_an_odom_trajectory_is_moved_into_map_by_the_declared_transform():
    message = curve(Time(sec=3), 'odom', x0=10.0)
    declared = PlanarTransform(100.0, 50.0, math.pi / 2)
    transform = placement('odom', 'odom', 'map', declared)
    converted = autoware_trajectory(message, AutowareTrajectory, AutowarePoint, 'map', transform)
    assert converted.header.frame_id == 'map'
    first = converted.points[0].pose
    # odom (10, 0) heading 0 -> map (100, 60) heading pi/2
    assert (first.position.x, first.position.y) == pytest.approx((100.0, 60.0))
    assert yaw_of(first.orientation) == pytest.approx(math.pi / 2)
    for original, copy in zip(message.points, converted.points, strict=True):
        p = original.pose.position
        assert copy.pose.position.x == pytest.approx(100.0 - p.y)
        assert copy.pose.position.y == pytest.approx(50.0 + p.x)
        assert yaw_of(copy.pose.orientation) == pytest.approx(
            yaw_of(original.pose.orientation) + math.pi / 2
        )
        for name in POINT_FIELDS:
            if name != 'pose':
                assert getattr(copy, name) == getattr(original, name), name


@pytest.mark.parametrize(
    ('frame', 'odometry_frame', 'declared', 'words'),
    [
        ('base_link', 'odom', None, "'base_link' is not 'map'"),
        ('base_link', 'map', None, "'base_link' is not 'map'"),
        ('base_link', 'odom', PlanarTransform(0.0, 0.0, 0.0), "'base_link' is not 'map'"),
        ('odom', 'odom', None, 'no map <- odometry transform'),
    ],
)
def test_a_trajectory_that_cannot_be_placed_in_map_is_refused(
    frame, odometry_frame, declared, words
):
    with pytest.raises(ValueError, match='cannot be placed') as error:
        placement(frame, odometry_frame, 'map', declared)
    assert words in str(error.value)


def test_the_control_command_is_autoware_s_control_field_by_field():
    command = ControlCommand(stamp=Time(sec=7, nanosec=9), control_time=Time(sec=8))
    command.lateral.stamp = command.longitudinal.stamp = command.stamp
    command.lateral.steering_tire_angle, command.lateral.steering_tire_rotation_rate = 0.1, -0.2
    command.lateral.is_defined_steering_tire_rotation_rate = True
    command.longitudinal.velocity, command.longitudinal.acceleration = 12.5, -1.25
    command.longitudinal.jerk, command.longitudinal.is_defined_jerk = 0.5, True
    control = mirrored(command, Control)
    assert isinstance(control, Control)
    assert control.stamp == command.stamp and control.control_time == command.control_time
    for part in ('lateral', 'longitudinal'):
        ours, theirs = getattr(command, part), getattr(control, part)
        names = list(type(theirs).get_fields_and_field_types())
        assert names == list(type(ours).get_fields_and_field_types())
        assert all(getattr(theirs, name) == getattr(ours, name) for name in names), part


def predicted(
    uuid_byte: int,
    x: float,
    y: float,
    yaw: float = 0.0,
    label: int | None = ObjectClassification.CAR,
    shape_type: int = Shape.BOUNDING_BOX,
    size: tuple[float, float, float] = (4.5, 1.8, 1.5),
    twist: tuple[float, float] = (0.0, 0.0),
) -> PredictedObject:
    """Return a PredictedObject as Autoware publishes it: twist in the object's own frame."""
    item = PredictedObject(existence_probability=0.9)
    item.object_id.uuid = [uuid_byte] * 16
    if label is not None:
        item.classification = [
            ObjectClassification(label=ObjectClassification.UNKNOWN, probability=0.2),
            ObjectClassification(label=label, probability=0.8),
        ]
    pose = item.kinematics.initial_pose_with_covariance.pose
    pose.position.x, pose.position.y = x, y
    pose.orientation.z, pose.orientation.w = math.sin(yaw / 2), math.cos(yaw / 2)
    linear = item.kinematics.initial_twist_with_covariance.twist.linear
    linear.x, linear.y = twist
    item.shape.type = shape_type
    item.shape.dimensions.x, item.shape.dimensions.y, item.shape.dimensions.z = size
    return item


def objects_message(frame: str, items: list[PredictedObject]) -> PredictedObjects:
    message = PredictedObjects(objects=items)
    message.header.stamp, message.header.frame_id = Time(sec=5), frame
    return message


def test_predicted_objects_become_the_monitor_s_obstacles():
    heading = math.pi / 2  # a truck driving along map +y at 5 m/s (its own x)
    truck = predicted(1, 10.0, 2.0, heading, ObjectClassification.TRUCK, twist=(5.0, 0.0))
    cylinder = predicted(
        2, 20.0, 0.0, 0.0, ObjectClassification.PEDESTRIAN, Shape.CYLINDER, (0.6, 0.6, 1.8)
    )
    polygon = predicted(
        3, 30.0, 0.0, 0.0, ObjectClassification.HAZARD, Shape.POLYGON, (0.0, 0.0, 0.5)
    )
    polygon.shape.footprint.points = [
        Point32(x=1.0, y=-0.5),
        Point32(x=3.0, y=-0.5),
        Point32(x=3.0, y=0.5),
        Point32(x=1.0, y=0.5),
    ]
    leaf = predicted(4, 40.0, 0.0, label=ObjectClassification.OVER_DRIVABLE)
    array, refusals = obstacle_array(
        objects_message('map', [truck, cylinder, polygon, leaf]), 'map'
    )
    assert refusals == []
    assert array.header.frame_id == 'map' and array.header.stamp == Time(sec=5)
    first, second, third = array.obstacles  # the leaf is no obstacle to the footprint
    assert first.classification == Obstacle.CLASS_TRUCK
    assert (first.dimensions.x, first.dimensions.y) == (4.5, pytest.approx(1.8))
    assert (first.velocity.x, first.velocity.y) == pytest.approx((0.0, 5.0))  # in map now
    assert yaw_of(first.pose.orientation) == pytest.approx(heading)
    assert second.classification == Obstacle.CLASS_PEDESTRIAN
    assert (second.dimensions.x, second.dimensions.y) == pytest.approx((0.6, 0.6))
    assert third.classification == Obstacle.CLASS_STATIC
    # The footprint's box: 2 x 1 m, its centre 2 m ahead of the object's pose.
    assert (third.dimensions.x, third.dimensions.y) == pytest.approx((2.0, 1.0))
    assert (third.pose.position.x, third.pose.position.y) == pytest.approx((32.0, 0.0))


def test_bad_objects_are_refused_one_by_one_by_name_and_the_rest_kept():
    unknown_shape = predicted(0xA1, 10.0, 0.0, shape_type=7)
    nan_size = predicted(0xA2, 10.0, 0.0, size=(math.nan, 1.8, 1.5))
    no_class = predicted(0xA3, 10.0, 0.0, label=None)
    good = predicted(0xA4, 30.0, 0.0)
    message = objects_message('map', [unknown_shape, nan_size, no_class, good])
    array, refusals = obstacle_array(message, 'map')
    assert [o.pose.position.x for o in array.obstacles] == [30.0]
    assert [(r.object_name, r.reason) for r in refusals] == [
        ('a1' * 16, 'unknown shape type 7'),
        ('a2' * 16, 'shape size is not finite (nan x 1.8 x 1.5 m)'),
        ('a3' * 16, 'empty classification'),
    ]
    unplaced, refusals = obstacle_array(objects_message('earth', [good]), 'map')
    assert unplaced is None  # not an empty list: that would read as "all clear"
    assert [(r.object_name, r.reason) for r in refusals] == [
        ('a4' * 16, "frame 'earth' is neither the odometry frame 'map' nor base_link")
    ]


@pytest.mark.parametrize('frame', ['', 'm', 'ma', 'map', 'base_link'])
def test_an_object_list_over_max_obstacles_is_refused_unread(frame: str):
    refused: list[tuple[str, str]] = []
    monitor = SafetyMonitor(MonitorConfig())
    feed = MonitorFeed(monitor, 10000, lambda *refusal: refused.append(refusal), 3)
    feed.odometry_frame = 'map'
    objects = [predicted(i, 30.0 + 10 * i, 0.0) for i in range(4)]
    raw = serialize_message(objects_message(frame, objects))
    assert sequence_length_after_header(raw) == 4
    assert feed.serialized_predicted_objects(raw, PredictedObjects) == []
    assert refused == [('obstacles', 'obstacle list has 4 obstacles, more than max_obstacles 3')]
    assert monitor.step(6 * NS).ages_s['obstacles'] == math.inf  # nothing reached the core
    at_bound = serialize_message(objects_message('map', objects[:3]))
    assert feed.serialized_predicted_objects(at_bound, PredictedObjects) == []
    assert len(refused) == 1 and monitor.step(6 * NS).ages_s['obstacles'] == 1.0


def test_the_monitor_state_as_autoware_s_hazard_status_and_lights():
    status = SafetyStatus(state=SafetyStatus.STATE_MINIMAL_RISK, latched=True, hazard_lights=True)
    status.header.stamp = Time(sec=11)
    status.checks = [
        SafetyCheck(rule='freshness.plan', verdict=SafetyCheck.VERDICT_PASS, reason='ok'),
        SafetyCheck(rule='kinematics.jerk', verdict=SafetyCheck.VERDICT_DEGRADE, reason='j'),
        SafetyCheck(rule='collision.ttc', verdict=SafetyCheck.VERDICT_EMERGENCY, reason='1.2 s'),
    ]
    stamped = hazard_status(status, HazardStatusStamped)
    assert isinstance(stamped, HazardStatusStamped) and stamped.stamp == Time(sec=11)
    hazard = stamped.status
    assert hazard.level == HazardStatus.SINGLE_POINT_FAULT
    assert hazard.emergency and hazard.emergency_holding
    assert [d.name for d in hazard.diag_no_fault] == ['safety_monitor_node: freshness.plan']
    assert [d.name for d in hazard.diag_safe_fault] == ['safety_monitor_node: kinematics.jerk']
    assert [d.message for d in hazard.diag_single_point_fault] == ['1.2 s']
    lights = hazard_lights_command(status, HazardLightsCommand)
    assert lights.command == HazardLightsCommand.ENABLE and lights.stamp == Time(sec=11)

    for state, level in [
        (SafetyStatus.STATE_NOMINAL, HazardStatus.NO_FAULT),
        (SafetyStatus.STATE_DEGRADED, HazardStatus.SAFE_FAULT),
        (SafetyStatus.STATE_OVERRIDE, HazardStatus.LATENT_FAULT),
    ]:
        calm = SafetyStatus(state=state)
        hazard = hazard_status(calm, HazardStatusStamped).status
        assert (hazard.level, hazard.emergency, hazard.emergency_holding) == (level, False, False)
        assert hazard_lights_command(calm, HazardLightsCommand).command == (
            HazardLightsCommand.NO_COMMAND
        )


# --- trajectory_output_node over DDS ----------------------------------------------------------


@pytest.fixture
def output_node(request) -> Iterator[subprocess.Popen]:
    """trajectory_output_node with autoware:=true and the test's extra parameters."""
    extra = getattr(request, 'param', [])
    arguments = ['-p', 'autoware:=true', '-p', 'trajectory_timeout_s:=0.5']
    arguments += ['-p', 'trajectory_source:=/output_world']  # the test plays the monitor
    for assignment in extra:
        arguments += ['-p', assignment]
    process = subprocess.Popen(
        [sys.executable, '-m', 'vla_planning.trajectory_output_node', '--ros-args', *arguments]
    )
    yield process
    assert process.poll() is None, f'trajectory_output_node exited with {process.returncode}'
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=20) == 0


class OutputWorld:
    """Plays the monitor and localisation; records both sides of trajectory_output_node."""

    def __init__(self, ros: RosHarness, odometry_frame: str) -> None:
        self.node = node = ros.node('output_world')
        self.odometry_frame = self.trajectory_frame = odometry_frame
        self.sent: dict[tuple[int, int], Trajectory] = {}
        self.autoware: list[AutowareTrajectory] = []
        self.controls: list[Control] = []
        self.commands: list[ControlCommand] = []
        self.diagnostics: list[dict[str, str]] = []
        self.trajectory = node.create_publisher(Trajectory, '/vla/trajectory', RELIABLE)
        self.odometry = node.create_publisher(
            Odometry, '/localization/kinematic_state', SENSOR_DATA
        )
        node.create_subscription(
            AutowareTrajectory, AUTOWARE_TRAJECTORY_TOPIC, self.autoware.append, RELIABLE
        )
        node.create_subscription(Control, AUTOWARE_CONTROL_TOPIC, self.controls.append, RELIABLE)
        node.create_subscription(
            ControlCommand, '/vla/control_command', self.commands.append, RELIABLE
        )
        node.create_subscription(DiagnosticArray, '/diagnostics', self._on_diagnostics, RELIABLE)
        node.create_timer(0.1, self._publish_trajectory)
        node.create_timer(0.02, self._publish_odometry)

    def _on_diagnostics(self, array: DiagnosticArray) -> None:
        for status in array.status:
            if status.name == 'trajectory_output_node: control':
                self.diagnostics.append({v.key: v.value for v in status.values})

    def _publish_trajectory(self) -> None:
        stamp = self.node.get_clock().now().to_msg()
        message = curve(stamp, self.trajectory_frame, x0=10.0)
        self.sent[(stamp.sec, stamp.nanosec)] = message
        self.trajectory.publish(message)

    def _publish_odometry(self) -> None:
        message = Odometry(child_frame_id='base_link')
        message.header.stamp = self.node.get_clock().now().to_msg()
        message.header.frame_id = self.odometry_frame
        message.pose.pose.position.x = 10.0
        message.pose.pose.orientation.w = 1.0
        message.twist.twist.linear.x = 10.0
        self.odometry.publish(message)


def stamp_key(stamp: Time) -> tuple[int, int]:
    return (stamp.sec, stamp.nanosec)


def test_over_dds_the_trajectory_and_control_reach_autoware_and_base_link_never_does(
    ros: RosHarness, output_node: subprocess.Popen
):
    world = OutputWorld(ros, 'map')
    assert ros.spin_until(lambda: len(world.autoware) >= 5 and len(world.controls) >= 30, 20.0), (
        f'{len(world.autoware)} trajectories, {len(world.controls)} controls on Autoware topics'
    )
    # Field by field: each Autoware trajectory is the one sent with the same stamp, in map.
    for received in world.autoware:
        sent = world.sent[stamp_key(received.header.stamp)]
        assert received.header.frame_id == 'map'
        assert len(received.points) == len(sent.points) == 31
        for original, copy in zip(sent.points, received.points, strict=True):
            for name in POINT_FIELDS:
                value = getattr(original, name)
                if isinstance(value, float):  # float32 on the wire
                    assert getattr(copy, name) == pytest.approx(value, rel=1e-6), name
                else:  # time_from_start, pose: exact
                    assert getattr(copy, name) == value, name
    # Each Control is the vla_msgs/ControlCommand of the same cycle, field by field.
    commands = {stamp_key(c.stamp): c for c in world.commands}
    matched = [
        (c, commands[stamp_key(c.stamp)]) for c in world.controls if stamp_key(c.stamp) in commands
    ]
    assert len(matched) >= 20
    for control, command in matched:
        assert control.control_time == command.control_time
        for part in ('lateral', 'longitudinal'):
            theirs, ours = getattr(control, part), getattr(command, part)
            for name in type(theirs).get_fields_and_field_types():
                assert getattr(theirs, name) == getattr(ours, name), (part, name)
    assert any(c.longitudinal.velocity > 9.0 for c, _ in matched), 'never tracking'

    # The monitor's stop before odometry comes in base_link: it must never reach Autoware.
    world.trajectory_frame = 'base_link'
    assert ros.spin_until(
        lambda: (
            world.diagnostics and int(world.diagnostics[-1]['autoware_trajectories_refused']) >= 5
        ),
        10.0,
    )
    assert (
        "trajectory frame 'base_link' is not the odometry frame 'map'"
        in (world.diagnostics[-1]['autoware_last_refusal'])
    )
    assert all(t.header.frame_id == 'map' for t in world.autoware)
    assert all(
        world.sent[stamp_key(t.header.stamp)].header.frame_id == 'map' for t in world.autoware
    )


@pytest.mark.parametrize(
    'output_node',
    [
        [
            'map_from_odometry.declared:=true',
            'map_from_odometry.x_m:=100.0',
            'map_from_odometry.y_m:=50.0',
            'map_from_odometry.yaw_rad:=1.5707963267948966',
        ]
    ],
    indirect=True,
)
def test_over_dds_an_odom_trajectory_goes_to_autoware_in_map_by_the_declared_transform(
    ros: RosHarness, output_node: subprocess.Popen
):
    world = OutputWorld(ros, 'odom')
    assert ros.spin_until(lambda: len(world.autoware) >= 3, 20.0)
    for received in world.autoware:
        sent = world.sent[stamp_key(received.header.stamp)]
        assert received.header.frame_id == 'map'
        for original, copy in zip(sent.points, received.points, strict=True):
            p = original.pose.position
            assert (copy.pose.position.x, copy.pose.position.y) == pytest.approx(
                (100.0 - p.y, 50.0 + p.x)
            )
            assert copy.longitudinal_velocity_mps == pytest.approx(
                original.longitudinal_velocity_mps
            )


# --- safety_monitor_node over DDS --------------------------------------------------------------


class MonitorWorld:
    """Odometry in map (as Autoware's localisation), plans, camera status, PredictedObjects."""

    def __init__(self, ros: RosHarness) -> None:
        self.node = node = ros.node('monitor_world')
        self.start_ns = node.get_clock().now().nanoseconds
        self.objects: list[PredictedObject] = []
        self.statuses: list[SafetyStatus] = []
        self.trajectories: list[Trajectory] = []
        self.hazards: list[HazardStatusStamped] = []
        self.lights: list[HazardLightsCommand] = []
        self.logs: list[Log] = []
        self.odometry = node.create_publisher(
            Odometry, '/localization/kinematic_state', SENSOR_DATA
        )
        self.plan = node.create_publisher(VlaPlan, '/vla/plan', RELIABLE)
        self.sensor_status = node.create_publisher(SensorStatus, '/vla/sensor_status', RELIABLE)
        self.objects_publisher = node.create_publisher(PredictedObjects, OBJECTS_TOPIC, RELIABLE)
        node.create_subscription(
            SafetyStatus, '/vla/safety_status', self.statuses.append, RELIABLE
        )
        node.create_subscription(Trajectory, '/vla/trajectory', self.trajectories.append, RELIABLE)
        node.create_subscription(
            HazardStatusStamped, HAZARD_STATUS_TOPIC, self.hazards.append, RELIABLE
        )
        node.create_subscription(
            HazardLightsCommand, HAZARD_LIGHTS_TOPIC, self.lights.append, RELIABLE
        )
        node.create_subscription(Log, '/rosout', self._on_log, LATCHED)
        node.create_timer(0.02, self._publish_odometry)
        node.create_timer(0.1, self._publish_inputs)

    def _on_log(self, message: Log) -> None:
        if message.name == 'safety_monitor_node':
            self.logs.append(message)

    def x_at(self, t_ns: int) -> float:
        """Return where the car is at `t_ns`: it left x = 0 when the world started."""
        return SPEED * (t_ns - self.start_ns) / NS

    def _publish_odometry(self) -> None:
        now = self.node.get_clock().now()
        message = Odometry(child_frame_id='base_link')
        message.header.stamp, message.header.frame_id = now.to_msg(), 'map'
        message.pose.pose.position.x = self.x_at(now.nanoseconds)
        message.pose.pose.orientation.w = 1.0
        message.twist.twist.linear.x = SPEED
        self.odometry.publish(message)

    def _publish_inputs(self) -> None:
        stamp = self.node.get_clock().now().to_msg()
        status = SensorStatus(complete=True)
        status.header.stamp, status.header.frame_id = stamp, 'base_link'
        status.cameras = [InputStatus(name=f'camera_{i}') for i in range(6)]
        self.sensor_status.publish(status)
        objects = PredictedObjects(objects=self.objects)
        objects.header.stamp, objects.header.frame_id = stamp, 'map'
        self.objects_publisher.publish(objects)
        self.plan.publish(straight_plan(stamp))  # 20 m/s along base_link x


@pytest.fixture
def autoware_monitor() -> Iterator[subprocess.Popen]:
    process = subprocess.Popen([tool('safety_monitor_node'), '--ros-args', '-p', 'autoware:=true'])
    yield process
    assert process.poll() is None, f'safety_monitor_node exited with {process.returncode}'
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=30) == 0


def test_over_dds_the_monitor_stops_for_a_stalled_vehicle_given_only_as_predicted_objects(
    ros: RosHarness, autoware_monitor: subprocess.Popen
):
    world = MonitorWorld(ros)
    assert ros.spin_until(
        lambda: world.statuses and world.statuses[-1].state == SafetyStatus.STATE_NOMINAL, 20.0
    ), 'never NOMINAL with all inputs fresh'
    assert ros.spin_until(lambda: bool(world.trajectories), 3.0)
    assert world.trajectories[-1].header.frame_id == 'map'  # the odometry's frame, kept
    # The same cycle's hazard status and lights come on their own topics: wait for them.
    assert ros.spin_until(
        lambda: world.hazards and world.hazards[-1].status.level == HazardStatus.NO_FAULT, 10.0
    )
    assert not world.hazards[-1].status.emergency
    assert ros.spin_until(
        lambda: world.lights and world.lights[-1].command == HazardLightsCommand.NO_COMMAND, 10.0
    )
    # A stalled car 30 m ahead in map (time to collision 1.2 s at 20 m/s: an emergency stop),
    # among objects the monitor must refuse one by one.
    now_ns = world.node.get_clock().now().nanoseconds
    world.objects = [
        predicted(0xB1, world.x_at(now_ns) + 20.0, 0.0, shape_type=7),
        predicted(0xB2, world.x_at(now_ns) + 20.0, 0.0, size=(math.nan, 1.8, 1.5)),
        predicted(0xB3, world.x_at(now_ns) + 20.0, 0.0, label=None),
        predicted(0xB4, world.x_at(now_ns) + 30.0, 0.0),
    ]
    assert ros.spin_until(
        lambda: (
            world.trajectories[-1].origin == Trajectory.ORIGIN_EMERGENCY_STOP
            and world.statuses[-1].trajectory_origin == Trajectory.ORIGIN_EMERGENCY_STOP
        ),
        10.0,
    ), 'no emergency stop for the stalled vehicle'
    status = world.statuses[-1]
    assert status.state == SafetyStatus.STATE_MINIMAL_RISK
    assert {'collision.ttc', 'collision.swept'} <= {c.rule for c in status.checks if c.verdict}
    assert ros.spin_until(lambda: world.hazards and world.hazards[-1].status.emergency, 3.0)
    assert world.hazards[-1].status.level == HazardStatus.SINGLE_POINT_FAULT
    assert ros.spin_until(
        lambda: world.lights and world.lights[-1].command == HazardLightsCommand.ENABLE, 10.0
    )
    # The refused objects are named in a warning; the node goes on.
    assert ros.spin_until(
        lambda: any(
            log.msg.startswith('Autoware object b1b1') and 'unknown shape type 7' in log.msg
            for log in world.logs
        ),
        10.0,
    ), [log.msg for log in world.logs]
    assert autoware_monitor.poll() is None


def test_without_autoware_true_the_nodes_are_silent_on_autoware_s_topics(ros: RosHarness):
    processes = [
        subprocess.Popen([tool('safety_monitor_node')]),
        subprocess.Popen([tool('trajectory_output_node')]),
    ]
    try:
        node = ros.node('graph_observer')
        assert ros.spin_until(
            lambda: (
                node.count_publishers('/vla/trajectory') >= 1
                and node.count_subscribers('/vla/trajectory') >= 1
            ),
            20.0,
        ), 'the nodes did not start'
        assert [
            topic
            for topic in (
                AUTOWARE_TRAJECTORY_TOPIC,
                AUTOWARE_CONTROL_TOPIC,
                HAZARD_STATUS_TOPIC,
                HAZARD_LIGHTS_TOPIC,
            )
            if node.count_publishers(topic)
        ] == []
        assert node.count_subscribers(OBJECTS_TOPIC) == 0
    finally:
        for process in processes:
            process.send_signal(signal.SIGINT)
        assert [process.wait(timeout=30) for process in processes] == [0, 0]
