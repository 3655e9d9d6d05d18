"""sim_bridge_node over real DDS: the topics it publishes, lockstep, refused commands, episodes.

The bridge runs in the test's rclpy context (its own DDS endpoints, the same participant), so
its counters can be read directly; a driver node plays the stack: it listens to every topic and
answers frames with ControlCommands. The console entry point runs as its own process once, to
check that a bad configuration ends it with a clear line.
"""

import math
import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import OccupancyGrid, Odometry
from rcl_interfaces.msg import Log
from rclpy.exceptions import ParameterException
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header, String
from vla_msgs.msg import ControlCommand, Instruction, ObstacleArray, VlaPlan

from repo_paths import tool
from vla_model.config import BEV_CLASSES, RATIONALES
from vla_perception.rig import RigConfig
from vla_perception.synchronizer import stamp_to_ns
from vla_ros.install_paths import vla_ros_file
from vla_ros.qos import LATCHED, RELIABLE, SENSOR_DATA
from vla_ros.stamps import to_time
from vla_ros.testing import RosHarness
from vla_ros.topics import (
    CLOCK_TOPIC,
    CONTROL_COMMAND_TOPIC,
    INSTRUCTION_TOPIC,
    OBSTACLES_TOPIC,
    ODOMETRY_TOPIC,
    RATIONALE_TOPIC,
    bev_topic,
)
from vla_sim.sim_bridge_node import SimBridgeNode
from vla_sim.simulation import START_TIME_NS

RIG = RigConfig.from_file(vla_ros_file('config/rig_surround.yaml'))
STEP_NS = 100_000_000  # the default step_s


class Driver:
    """Plays the stack: records everything the bridge publishes and sends ControlCommands."""

    def __init__(self, ros: RosHarness) -> None:
        self.ros = ros
        node = ros.node('driver')
        self.odometry: list[Odometry] = []
        self.obstacles: list[ObstacleArray] = []
        self.instructions: list[Instruction] = []
        self.clocks: list[int] = []
        self.rationales: list[str] = []
        self.images: dict[str, list[Image]] = {spec.name: [] for spec in RIG.cameras}
        self.infos: dict[str, list[CameraInfo]] = {spec.name: [] for spec in RIG.cameras}
        self.bev: dict[str, list[OccupancyGrid]] = {name: [] for name in BEV_CLASSES}
        self.diagnostics: list[dict[str, str]] = []
        self.logs: list[str] = []
        self.commands = node.create_publisher(ControlCommand, CONTROL_COMMAND_TOPIC, RELIABLE)
        node.create_subscription(Odometry, ODOMETRY_TOPIC, self.odometry.append, SENSOR_DATA)
        node.create_subscription(ObstacleArray, OBSTACLES_TOPIC, self.obstacles.append, RELIABLE)
        node.create_subscription(Instruction, INSTRUCTION_TOPIC, self.instructions.append, LATCHED)
        node.create_subscription(
            Clock, CLOCK_TOPIC, lambda m: self.clocks.append(stamp_to_ns(m.clock)), RELIABLE
        )
        node.create_subscription(
            String, RATIONALE_TOPIC, lambda m: self.rationales.append(m.data), RELIABLE
        )
        for spec in RIG.cameras:
            node.create_subscription(
                Image, spec.image_topic, self.images[spec.name].append, SENSOR_DATA
            )
            node.create_subscription(
                CameraInfo, spec.info_topic, self.infos[spec.name].append, LATCHED
            )
        for name in BEV_CLASSES:
            node.create_subscription(
                OccupancyGrid, bev_topic(name), self.bev[name].append, RELIABLE
            )
        node.create_subscription(DiagnosticArray, '/diagnostics', self._on_diagnostics, RELIABLE)
        rosout_qos = QoSProfile(
            depth=100, reliability=LATCHED.reliability, durability=LATCHED.durability
        )
        node.create_subscription(Log, '/rosout', self._on_log, rosout_qos)

    def _on_diagnostics(self, array: DiagnosticArray) -> None:
        for status in array.status:
            if status.name.startswith('sim_bridge_node'):
                self.diagnostics.append({kv.key: kv.value for kv in status.values})

    def _on_log(self, message: Log) -> None:
        if message.name == 'sim_bridge_node':
            self.logs.append(message.msg)

    def wait_for(self, condition: Callable[[], bool], timeout_s: float = 10.0) -> bool:
        """Spin the test's nodes (the bridge included) until `condition()` holds."""
        return self.ros.spin_until(condition, timeout_s)

    def stamps(self) -> list[int]:
        """Stamps of the odometry received, in order."""
        return [stamp_to_ns(m.header.stamp) for m in self.odometry]

    def wait_for_frames(self, count: int) -> list[int]:
        """Wait until `count` odometry frames have arrived; return their stamps."""
        assert self.wait_for(lambda: len(self.odometry) >= count), (
            f'{len(self.odometry)} frames, waited for {count}'
        )
        return self.stamps()

    def send(self, stamp_ns: int, steering: float = 0.0, acceleration: float = 0.0) -> None:
        """Publish a ControlCommand stamped `stamp_ns`."""
        message = ControlCommand(stamp=to_time(stamp_ns))
        message.lateral.steering_tire_angle = steering
        message.longitudinal.acceleration = acceleration
        message.longitudinal.is_defined_acceleration = True
        self.commands.publish(message)


def launch(ros: RosHarness, **parameters: object) -> SimBridgeNode:
    """Start sim_bridge_node in the test's context, with parameter overrides."""
    overrides = [Parameter(name, value=value) for name, value in parameters.items()]
    bridge = SimBridgeNode(context=ros.context, parameter_overrides=overrides)
    ros.executor.add_node(bridge)
    return bridge


def stop(ros: RosHarness, bridge: SimBridgeNode) -> None:
    ros.executor.remove_node(bridge)
    bridge.destroy_node()


@pytest.fixture
def start_bridge(ros: RosHarness) -> Iterator[Callable[..., SimBridgeNode]]:
    """launch() for one test; the bridges are stopped after it."""
    started: list[SimBridgeNode] = []

    def start(**parameters: object) -> SimBridgeNode:
        started.append(launch(ros, **parameters))
        return started[-1]

    yield start
    for bridge in started:
        stop(ros, bridge)


def test_lockstep_publishes_every_topic_at_the_frame_stamp(ros: RosHarness, start_bridge) -> None:
    driver = Driver(ros)
    bridge = start_bridge(scenario='highway', seed=3, lockstep_timeout_s=60.0)
    published = [
        lambda: driver.odometry,
        lambda: driver.obstacles,
        lambda: driver.instructions,
        lambda: driver.clocks,
        lambda: driver.rationales,
        *(lambda name=name: driver.images[name] for name in driver.images),
        *(lambda name=name: driver.infos[name] for name in driver.infos),
        *(lambda name=name: driver.bev[name] for name in driver.bev),
    ]
    assert driver.wait_for(lambda: all(topic() for topic in published))
    stamp = START_TIME_NS
    odometry = driver.odometry[0]
    assert stamp_to_ns(odometry.header.stamp) == stamp
    assert (odometry.header.frame_id, odometry.child_frame_id) == ('odom', 'base_link')
    assert driver.clocks == [stamp]
    obstacles = driver.obstacles[0]
    assert obstacles.header.frame_id == 'odom' and stamp_to_ns(obstacles.header.stamp) == stamp
    assert obstacles.obstacles, 'highway traffic within radar range'
    instruction = driver.instructions[0]
    assert instruction.text == bridge.core.instruction.text
    assert instruction.source == Instruction.SOURCE_SCENARIO
    assert instruction.id.endswith('@3')
    assert driver.rationales[0] in RATIONALES
    for spec in RIG.cameras:
        image, info = driver.images[spec.name][0], driver.infos[spec.name][0]
        intrinsics = spec.intrinsics
        assert stamp_to_ns(image.header.stamp) == stamp_to_ns(info.header.stamp) == stamp
        assert image.header.frame_id == info.header.frame_id == spec.frame_id
        assert (image.width, image.height, image.encoding) == (
            intrinsics.width,
            intrinsics.height,
            'rgb8',
        )
        assert (info.width, info.height) == (intrinsics.width, intrinsics.height)
        assert list(info.k) == [
            intrinsics.fx,
            0.0,
            intrinsics.cx,
            0.0,
            intrinsics.fy,
            intrinsics.cy,
            0.0,
            0.0,
            1.0,
        ]
    for grids in driver.bev.values():
        assert grids[0].header.frame_id == 'base_link'
        assert len(grids[0].data) == grids[0].info.width * grids[0].info.height
    assert any(value == 100 for value in driver.bev['drivable'][0].data)


def test_lockstep_advances_one_step_per_command_and_never_without_one(
    ros: RosHarness, start_bridge
) -> None:
    driver = Driver(ros)
    bridge = start_bridge(lockstep_timeout_s=60.0)
    (first,) = driver.wait_for_frames(1)
    assert not driver.wait_for(lambda: len(driver.odometry) > 1, timeout_s=0.5)
    assert bridge.steps == 0 and bridge.timeouts == 0
    for count in range(1, 6):
        driver.send(driver.stamps()[-1], acceleration=1.0)
        stamps = driver.wait_for_frames(count + 1)
        assert bridge.steps == count
    assert stamps == [first + k * STEP_NS for k in range(6)]
    assert driver.wait_for(lambda: driver.clocks == stamps), driver.clocks
    assert bridge.commands_stale == bridge.commands_rejected == bridge.timeouts == 0


def test_lockstep_with_a_plan_topic_steps_only_on_a_plan_and_a_command(
    ros: RosHarness, start_bridge
) -> None:
    driver = Driver(ros)
    bridge = start_bridge(lockstep_timeout_s=60.0, plan_topic='vla/plan')
    assert not driver.wait_for(lambda: len(driver.odometry) > 0, timeout_s=1.0), (
        'no episode may start before a planner offers vla/plan'
    )
    plans = ros.node('planner').create_publisher(VlaPlan, '/vla/plan', RELIABLE)
    (first,) = driver.wait_for_frames(1)
    driver.send(first, acceleration=1.0)
    assert not driver.wait_for(lambda: len(driver.odometry) > 1, timeout_s=0.5), (
        'a command alone must not step the world ahead of the planner'
    )
    plans.publish(VlaPlan(header=Header(stamp=to_time(first - STEP_NS))))
    assert not driver.wait_for(lambda: len(driver.odometry) > 1, timeout_s=0.5), (
        "an earlier frame's plan does not count"
    )
    plans.publish(VlaPlan(header=Header(stamp=to_time(first))))
    assert driver.wait_for_frames(2)[-1] == first + STEP_NS and bridge.steps == 1
    second = driver.stamps()[-1]
    plans.publish(VlaPlan(header=Header(stamp=to_time(second))))
    assert not driver.wait_for(lambda: len(driver.odometry) > 2, timeout_s=0.5), (
        'a plan alone must not step either'
    )
    driver.send(second)
    assert driver.wait_for_frames(3)[-1] == second + STEP_NS and bridge.steps == 2


def test_stale_and_unusable_commands_are_refused_and_counted(
    ros: RosHarness, start_bridge
) -> None:
    driver = Driver(ros)
    bridge = start_bridge(lockstep_timeout_s=60.0)
    (stamp,) = driver.wait_for_frames(1)
    driver.send(stamp - 1)  # answers an earlier frame
    assert driver.wait_for(lambda: bridge.commands_stale == 1)
    driver.send(stamp, steering=math.nan)
    assert driver.wait_for(lambda: bridge.commands_rejected == 1)
    assert 'lateral.steering_tire_angle is not finite' in bridge.last_rejection
    assert bridge.steps == 0 and len(driver.odometry) == 1
    driver.send(stamp)
    assert driver.wait_for_frames(2)[-1] == stamp + STEP_NS
    assert driver.wait_for(
        lambda: any(
            d['commands_stale'] == '1' and d['commands_rejected'] == '1' and d['steps'] == '1'
            for d in driver.diagnostics
        )
    ), driver.diagnostics[-1:]
    assert driver.wait_for(lambda: any('not finite' in line for line in driver.logs))


def test_lockstep_timeout_steps_with_the_last_valid_command(ros: RosHarness, start_bridge) -> None:
    driver = Driver(ros)
    bridge = start_bridge(lockstep_timeout_s=0.2, render=False)
    (stamp,) = driver.wait_for_frames(1)
    driver.send(stamp, acceleration=2.0)
    stamps = driver.wait_for_frames(5)[:5]
    assert bridge.timeouts >= 3
    assert stamps == [stamp + k * STEP_NS for k in range(5)]
    speeds = np.array([m.twist.twist.linear.x for m in driver.odometry[:5]])
    np.testing.assert_allclose(np.diff(speeds), 0.2, atol=1e-6)  # 2 m/s^2 held for 0.1 s steps
    assert driver.wait_for(lambda: any('lockstep timeout' in line for line in driver.logs))


def test_realtime_steps_on_the_wall_clock_with_the_latest_command(
    ros: RosHarness, start_bridge
) -> None:
    driver = Driver(ros)
    bridge = start_bridge(mode='realtime', step_s=0.05, render=False)
    stamps = driver.wait_for_frames(4)[:4]
    assert stamps == [START_TIME_NS + k * 50_000_000 for k in range(4)]
    driver.send(driver.stamps()[-1], acceleration=-3.0)
    assert driver.wait_for(lambda: bridge.core.world.ego.command.acceleration_mps2 == -3.0)


def drive(ros: RosHarness, steps: int) -> list[tuple[float, ...]]:
    """Run seed 5 for `steps` lockstep steps with a fixed command sequence; return odometry."""
    driver = Driver(ros)
    bridge = launch(ros, scenario='highway', seed=5, lockstep_timeout_s=60.0)
    try:
        for k in range(steps):
            stamp = driver.wait_for_frames(k + 1)[-1]
            driver.send(stamp, steering=0.05 * math.sin(0.5 * k), acceleration=math.cos(0.3 * k))
        driver.wait_for_frames(steps + 1)
    finally:
        stop(ros, bridge)
    return [
        (
            stamp_to_ns(m.header.stamp),
            m.pose.pose.position.x,
            m.pose.pose.position.y,
            m.pose.pose.orientation.z,
            m.pose.pose.orientation.w,
            m.twist.twist.linear.x,
            m.twist.twist.angular.z,
        )
        for m in driver.odometry
    ]


def test_same_seed_and_commands_give_identical_odometry(ros: RosHarness) -> None:
    first, second = drive(ros, steps=12), drive(ros, steps=12)
    assert len(first) == 13
    assert first == second
    assert first[-1][1:3] != first[0][1:3]  # the ego moved


def test_episodes_run_one_after_another_on_a_monotonic_clock_then_idle(
    ros: RosHarness, start_bridge
) -> None:
    driver = Driver(ros)
    bridge = start_bridge(
        scenario='highway', seed=8, episodes=2, step_s=1.0, lockstep_timeout_s=0.01, render=False
    )
    assert driver.wait_for(lambda: bridge.idle, timeout_s=15.0)
    assert driver.wait_for(lambda: any('idle' in line for line in driver.logs))
    ended = [line for line in driver.logs if ' ended: ' in line]
    assert len(ended) == 2 and '(seed 8)' in ended[0] and '(seed 9)' in ended[1]
    assert driver.wait_for(lambda: len(driver.instructions) == 2)
    assert [m.id.rsplit('@', 1)[1] for m in driver.instructions] == ['8', '9']
    stamps = driver.stamps()
    assert stamps == [START_TIME_NS + k * 1_000_000_000 for k in range(len(stamps))]
    frames = len(driver.odometry)
    assert not driver.wait_for(lambda: len(driver.odometry) > frames, timeout_s=0.3)


@pytest.mark.parametrize(
    ('parameters', 'error', 'message'),
    [
        ({'mode': 'fast'}, ValueError, "parameter mode: 'fast' is not one of lockstep, realtime"),
        ({'split': 'dev'}, ValueError, "parameter split: 'dev' is not one of train, validation"),
        ({'use_sim_time': True}, ValueError, 'publishes /clock and cannot itself use sim time'),
        ({'step_s': 5.0}, ParameterException, 'step_s'),
    ],
    ids=['mode', 'split', 'use_sim_time', 'step_s out of range'],
)
def test_bad_parameters_are_refused_with_the_reason(
    ros: RosHarness, parameters: dict, error: type, message: str
) -> None:
    with pytest.raises(error, match=re.escape(message)):
        launch(ros, **parameters)


def test_a_compressed_camera_is_refused(ros: RosHarness, tmp_path: Path) -> None:
    text = vla_ros_file('config/rig_surround.yaml').read_text(encoding='utf-8')
    rig_file = tmp_path / 'rig.yaml'
    rig_file.write_text(text.replace('transport: raw', 'transport: compressed', 1))
    with pytest.raises(ValueError, match='cameras front use compressed transport'):
        launch(ros, rig_file=str(rig_file))


def test_an_unknown_scenario_ends_the_process_with_one_clear_line() -> None:
    result = subprocess.run(
        [tool('sim_bridge_node'), '--ros-args', '-p', 'scenario:=nowhere'],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "unknown scenario 'nowhere'; known: highway" in result.stderr
    assert 'Traceback' not in result.stderr


def test_a_malformed_ros_argument_ends_the_process_with_one_clear_line() -> None:
    result = subprocess.run(
        [tool('sim_bridge_node'), '--ros-args', '-p', 'plan_topic:='],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "sim_bridge_node: failed to initialize rcl: Couldn't parse parameter" in result.stderr
    assert 'Traceback' not in result.stderr
