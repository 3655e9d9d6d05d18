"""sensor_sync_node over real DDS, as its own process.

Six jittery 10 Hz cameras, a camera that dies and comes back, and every kind of bad input.
"""

import json
import random
import signal
import struct
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from nav_msgs.msg import Odometry
from rcl_interfaces.msg import Log
from rclpy.clock import Clock as RclpyClock
from rclpy.clock import ClockType
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.parameter_client import AsyncParameterClient
from rclpy.serialization import serialize_message
from rclpy.time import Time
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from vla_msgs.msg import InputStatus, SensorFrame, SensorStatus

from repo_paths import REPO_ROOT, run_vla, tool
from vla_perception.rig import RigConfig
from vla_perception.sensor_sync_node import PARAMETERS, arrival_ns
from vla_ros.qos import LATCHED, RELIABLE, SENSOR_DATA
from vla_ros.testing import RosHarness

WIDTH, HEIGHT = 320, 180
DEADLINE_S = 0.15
NODE_ARGS = [
    '-p',
    f'deadline_s:={DEADLINE_S}',
    '-p',
    'output_width:=160',
    '-p',
    'output_height:=96',
    '-p',
    'warning_period_s:=0.5',
    '-p',
    'stale_timeout_s:=0.4',
]


def camera_info(width: int = WIDTH, height: int = HEIGHT) -> CameraInfo:
    info = CameraInfo(width=width, height=height, distortion_model='plumb_bob')
    info.k = [200.0, 0.0, width / 2, 0.0, 200.0, height / 2, 0.0, 0.0, 1.0]
    info.p = [200.0, 0.0, width / 2, 0.0, 0.0, 200.0, height / 2, 0.0, 0.0, 0.0, 1.0, 0.0]
    info.d = [0.0] * 5
    return info


class RigDriver:
    """Publishes a rig's cameras at 10 Hz with stamp and timing jitter, plus 50 Hz odometry.

    Capture stamps follow a steady 10 Hz grid (as a camera's clock does) with up to 8 ms of
    jitter; when the images are delivered depends on this process's executor, as on a real bus.
    """

    def __init__(self, node: Node, rig: RigConfig) -> None:
        self.node, self.rig = node, rig
        self.rng = random.Random(3)
        self.alive = dict.fromkeys(rig.names, True)
        # Changes a camera's message before it is sent; one that returns bytes sends those.
        self.override: dict[str, Callable[[Image | CompressedImage], bytes | None]] = {}
        pixels = np.random.default_rng(0).integers(0, 256, (HEIGHT, WIDTH, 3), np.uint8)
        self.raw = pixels.tobytes()
        self.jpeg = cv2.imencode('.jpg', pixels)[1].tobytes()
        self.images, self.infos = {}, {}
        for spec in rig.cameras:
            kind = CompressedImage if spec.compressed else Image
            self.images[spec.name] = node.create_publisher(kind, spec.image_topic, RELIABLE)
            self.infos[spec.name] = node.create_publisher(CameraInfo, spec.info_topic, LATCHED)
            self.publish_info(spec.name, camera_info())
        self.odometry = node.create_publisher(Odometry, '/localization/kinematic_state', RELIABLE)
        self.ticks = 0
        self.start_ns: int | None = None  # the first tick: the node's clock may be simulated
        node.create_timer(0.1, self._publish_images)
        node.create_timer(0.02, self._publish_odometry)

    def publish_info(self, camera: str, info: CameraInfo) -> None:
        """Publish (latched) the camera's intrinsics."""
        self.infos[camera].publish(info)

    def _publish_images(self) -> None:
        if self.start_ns is None:
            self.start_ns = self.node.get_clock().now().nanoseconds
        self.ticks += 1
        capture_ns = self.start_ns + self.ticks * 100_000_000
        for spec in self.rig.cameras:
            if not self.alive[spec.name]:
                continue
            stamp = capture_ns - self.rng.randint(0, 8_000_000)
            if spec.compressed:
                msg = CompressedImage(format='jpeg', data=self.jpeg)
            else:
                msg = Image(
                    height=HEIGHT, width=WIDTH, encoding='bgr8', step=WIDTH * 3, data=self.raw
                )
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
            msg.header.frame_id = spec.frame_id
            serialized = self.override.get(spec.name, lambda _m: None)(msg)
            self.images[spec.name].publish(msg if serialized is None else serialized)

    def _publish_odometry(self) -> None:
        msg = Odometry(child_frame_id='base_link')
        msg.header.stamp = self.node.get_clock().now().to_msg()
        msg.header.frame_id = 'map'  # as Autoware's localisation: not the usual odom
        msg.pose.pose.orientation.w = 1.0
        msg.twist.twist.linear.x = 10.0
        self.odometry.publish(msg)


class Listener:
    """Collects what the node publishes: statuses, frames, and its log messages."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.statuses: list[tuple[int, SensorStatus]] = []
        self.frames: list[SensorFrame] = []
        self.logs: list[Log] = []
        node.create_subscription(SensorStatus, '/vla/sensor_status', self._on_status, RELIABLE)
        node.create_subscription(SensorFrame, '/vla/sensor_frame', self.frames.append, SENSOR_DATA)
        node.create_subscription(Log, '/rosout', self._on_log, LATCHED)
        self.diagnostics: list[dict[str, tuple[bytes, dict[str, str]]]] = []
        node.create_subscription(DiagnosticArray, '/diagnostics', self._on_diagnostics, RELIABLE)

    def _on_diagnostics(self, array: DiagnosticArray) -> None:
        self.diagnostics.append(
            {s.name: (s.level, {kv.key: kv.value for kv in s.values}) for s in array.status}
        )

    def _on_status(self, msg: SensorStatus) -> None:
        self.statuses.append((self.node.get_clock().now().nanoseconds, msg))

    def _on_log(self, msg: Log) -> None:
        if msg.name == 'sensor_sync_node':
            self.logs.append(msg)

    def since(self, start_ns: int) -> list[tuple[int, SensorStatus]]:
        """Return the statuses received at or after `start_ns`, with their receive times."""
        return [(t, s) for t, s in self.statuses if t >= start_ns]


def health(status: SensorStatus) -> dict[str, int]:
    return {camera.name: camera.health for camera in status.cameras}


@pytest.fixture
def start_node() -> Iterator[Callable[..., subprocess.Popen]]:
    """Start sensor_sync_node processes; each must still run and stop cleanly on SIGINT."""
    processes = []

    def start(*ros_args: str) -> subprocess.Popen:
        process = subprocess.Popen([tool('sensor_sync_node'), '--ros-args', *NODE_ARGS, *ros_args])
        processes.append(process)
        return process

    yield start
    for process in processes:
        assert process.poll() is None, f'sensor_sync_node exited early with {process.returncode}'
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=20) == 0


def test_six_cameras_one_dies_and_comes_back(ros: RosHarness, start_node):
    rig = RigConfig.from_file(REPO_ROOT / 'vla_ros' / 'config' / 'rig_surround.yaml')
    driver = RigDriver(ros.node('rig_driver'), rig)
    listener = Listener(ros.node('listener'))
    start_node()
    assert ros.spin_until(lambda: len(listener.statuses) >= 15, 30.0), 'no steady frames'

    steady = [s for _, s in listener.statuses[-10:]]
    # Every camera is alive: frames are complete, except that a scheduling stall of this shared
    # machine may make a camera late (STALE) in a frame; none is ever MISSING.
    assert sum(s.complete for s in steady) >= 8, [health(s) for s in steady]
    assert all(
        h in (InputStatus.HEALTH_OK, InputStatus.HEALTH_STALE)
        for s in steady
        for h in health(s).values()
    ), [health(s) for s in steady]
    stamps = [s.header.stamp.sec + s.header.stamp.nanosec * 1e-9 for s in steady]
    assert 0.08 <= float(np.mean(np.diff(stamps))) <= 0.13  # 10 Hz
    assert ros.spin_until(lambda: bool(listener.frames), 5.0)
    frame = listener.frames[-1]
    assert [c.image.width for c in frame.cameras] == [160] * 6
    assert all(
        c.image.encoding == 'rgb8' and len(c.image.data) == 160 * 96 * 3 for c in frame.cameras
    )
    assert frame.cameras[0].camera_info.k[0] == pytest.approx(200.0 * 160 / WIDTH)
    # The frame's odometry keeps the input's frames (map here), never assumes odom.
    assert (frame.odometry.header.frame_id, frame.odometry.child_frame_id) == ('map', 'base_link')

    assert ros.spin_until(lambda: len(listener.diagnostics) >= 2, 5.0)
    diagnostics = listener.diagnostics[-1]
    level, frames_values = diagnostics['sensor_sync_node: frames']
    # Rates are the node's measurements of a 10 Hz driver on a shared machine: plausible.
    assert level == DiagnosticStatus.OK and 5.0 <= float(frames_values['rate_hz']) <= 15.0
    assert float(frames_values['processing_ms_mean']) < 100.0
    for name in rig.names:
        level, values = diagnostics[f'sensor_sync_node: camera {name}']
        assert level == DiagnosticStatus.OK and values['health'] == 'OK'
        assert 5.0 <= float(values['rate_hz']) <= 15.0
        assert {
            'arrival_delay_ms_mean',
            'skew_ms',
            'out_of_order',
            'queue_overflow',
            'rejected',
        } <= set(values)

    stop_ns = ros.node('clock').get_clock().now().nanoseconds
    driver.alive['back'] = False
    # Frames keep coming while a camera is dead (degraded, never silent), and the camera ends
    # up MISSING; waited for rather than counted in a fixed window, so a stall cannot fail it.
    assert ros.spin_until(
        lambda: (
            len(listener.since(stop_ns)) >= 11
            and health(listener.since(stop_ns)[-1][1])['back'] == InputStatus.HEALTH_MISSING
        ),
        10.0,
    ), f'{len(listener.since(stop_ns))} frames since a camera died, without it MISSING'
    after = listener.since(stop_ns)
    first_late = [(t, s) for t, s in after if not s.complete]
    assert first_late, 'the dead camera was never marked'
    t, status = first_late[0]
    stamp_ns = status.header.stamp.sec * 1_000_000_000 + status.header.stamp.nanosec
    # Released at the deadline, not held for the dead camera (0.5 s margin for a stall).
    assert (t - stamp_ns) * 1e-9 <= DEADLINE_S + 0.5, 'frame withheld beyond the deadline'
    assert health(status)['back'] in (InputStatus.HEALTH_STALE, InputStatus.HEALTH_MISSING)
    assert all(h == InputStatus.HEALTH_OK for n, h in health(status).items() if n != 'back')
    assert health(after[-1][1])['back'] == InputStatus.HEALTH_MISSING
    assert ros.spin_until(
        lambda: (
            listener.diagnostics[-1]['sensor_sync_node: camera back'][1]['health'] == 'MISSING'
        ),
        5.0,
    )
    level, values = listener.diagnostics[-1]['sensor_sync_node: camera back']
    assert level == DiagnosticStatus.WARN

    restart_ns = ros.node('clock2').get_clock().now().nanoseconds
    driver.alive['back'] = True
    assert ros.spin_until(lambda: any(s.complete for _, s in listener.since(restart_ns)), 3.0), (
        'the restarted camera was not marked live again'
    )


BAD_RIG = """cameras:
  - {name: good, transport: raw, extrinsic: {xyz: [1, 0, 1.5], rpy: [0, 0, 0]}}
  - {name: victim, transport: raw, extrinsic: {xyz: [1, 0.5, 1.5], rpy: [0, 0, 1]}}
  - {name: jpeg, transport: compressed, extrinsic: {xyz: [1, -0.5, 1.5], rpy: [0, 0, -1]}}
"""


def short_data(msg):
    msg.data = msg.data[:-7]


def weird_encoding(msg):
    msg.encoding = 'weird16'


def zero_width(msg):
    msg.width, msg.step, msg.data = 0, 0, b''


def absurd_height(msg):
    msg.height = 100_000


def corrupt_jpeg(msg):
    msg.data = b'\xff\xd8\xff\xe0garbage-not-a-jpeg'


def truncated_cdr(msg) -> bytes:
    return serialize_message(msg)[:-1000]


def lying_data_length(msg) -> bytes:
    data, msg.data = msg.data, b''
    length_at = len(serialize_message(msg)) - 4  # data is the last field: its length ends it
    msg.data = data
    raw = bytearray(serialize_message(msg))
    struct.pack_into('<I', raw, length_at, len(data) + 1)
    return bytes(raw)


def big_endian_flag(msg) -> bytes:
    return b'\x00\x00' + serialize_message(msg)[2:]  # little-endian bytes said to be big


@pytest.mark.parametrize(
    ('camera', 'corrupt', 'info', 'expected'),
    [
        ('victim', short_data, None, 'data_size'),
        ('victim', weird_encoding, None, 'encoding'),
        ('victim', zero_width, None, 'dimensions'),
        ('victim', absurd_height, None, 'dimensions'),
        ('victim', None, camera_info(640, 480), 'camera_info_size'),
        ('jpeg', corrupt_jpeg, None, 'corrupt_compressed'),
        ('victim', truncated_cdr, None, 'malformed'),
        ('victim', lying_data_length, None, 'malformed'),
        ('jpeg', big_endian_flag, None, 'malformed'),
    ],
    ids=[
        'short-data',
        'unknown-encoding',
        'zero-width',
        'absurd-height',
        'info-mismatch',
        'corrupt-jpeg',
        'truncated-cdr',
        'lying-length',
        'wrong-endianness',
    ],
)
def test_bad_input_is_dropped_with_a_warning_and_others_keep_flowing(
    ros: RosHarness, start_node, tmp_path: Path, camera, corrupt, info, expected
):
    rig_file = tmp_path / 'rig.yaml'
    rig_file.write_text(BAD_RIG)
    rig = RigConfig.from_file(rig_file)
    driver = RigDriver(ros.node('rig_driver'), rig)
    listener = Listener(ros.node('listener'))
    start_node('-p', f'rig_file:={rig_file}')
    assert ros.spin_until(lambda: any(s.complete for _, s in listener.statuses), 30.0)
    if corrupt is not None:
        driver.override[camera] = corrupt
    if info is not None:
        driver.publish_info(camera, info)
    start = ros.node('clock').get_clock().now().nanoseconds
    assert ros.spin_until(
        lambda: any(expected in log.msg and camera in log.msg for log in listener.logs), 10.0
    ), f'no {expected} warning for {camera}: {[log.msg for log in listener.logs]}'
    ros.spin_until(lambda: len(listener.since(start)) >= 8, 5.0)
    latest = health(listener.since(start)[-1][1])
    assert latest[camera] == InputStatus.HEALTH_INVALID
    assert all(h == InputStatus.HEALTH_OK for name, h in latest.items() if name != camera)
    warnings = [log for log in listener.logs if expected in log.msg]
    assert all(log.level == Log.WARN for log in warnings)
    assert len(warnings) <= 4, 'warnings must be throttled (one per camera and reason per 0.5 s)'


def test_a_volatile_camera_info_publisher_is_named_with_the_fix(ros: RosHarness, start_node):
    """The incompatible-QoS event reaches the node through its (event-driven) executor."""
    rig = RigConfig.from_file(REPO_ROOT / 'vla_ros' / 'config' / 'rig_surround.yaml')
    topic = rig.cameras[0].info_topic
    listener = Listener(ros.node('listener'))
    start_node()
    ros.node('volatile_driver').create_publisher(CameraInfo, topic, RELIABLE)
    assert ros.spin_until(
        lambda: any(
            f'a publisher of {topic} offers QoS incompatible' in log.msg
            and 'camera_info_transient_local:=false' in log.msg
            for log in listener.logs
        ),
        30.0,
    ), [log.msg for log in listener.logs]


def test_on_simulated_time_an_image_arrives_no_earlier_than_its_stamp():
    ms = 1_000_000
    # Lockstep: a step's images come while the clock still reads the previous step.
    assert arrival_ns(900 * ms, 1000 * ms, 100 * ms, simulated=True) == 1000 * ms
    assert arrival_ns(500 * ms, 1000 * ms, 100 * ms, simulated=True) == 600 * ms  # one deadline
    assert arrival_ns(1020 * ms, 1000 * ms, 100 * ms, simulated=True) == 1020 * ms
    # On wall time the clock is the truth, whatever the camera's clock says.
    assert arrival_ns(900 * ms, 1000 * ms, 100 * ms, simulated=False) == 900 * ms


def test_parameter_out_of_range_stops_the_node_with_the_reason():
    result = subprocess.run(
        [tool('sensor_sync_node'), '--ros-args', '-p', 'rate_hz:=1000.0'],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert 'Parameter rate_hz out of range Min: 0.1, Max: 100.0, value: 1000.0' in result.stderr


def test_read_only_parameter_cannot_be_changed_at_run_time(ros: RosHarness, start_node):
    start_node()
    client = AsyncParameterClient(ros.node('operator'), 'sensor_sync_node')
    assert ros.spin_until(lambda: client.services_are_ready(), 30.0)
    future = client.set_parameters([Parameter('max_skew_s', value=0.5)])
    assert ros.spin_until(future.done, 10.0)
    result = future.result().results[0]
    assert not result.successful
    assert 'read-only' in result.reason
    got = client.get_parameters(['max_skew_s'])
    assert ros.spin_until(got.done, 10.0)
    assert got.result().values[0].double_value == 0.05


def test_deadline_follows_simulated_time(ros: RosHarness, start_node):
    """With use_sim_time (bag replay, simulator), a paused clock must not fire the deadline."""
    sim = {'now_ns': 1_000 * 1_000_000_000, 'paused': False}
    clock_node = ros.node('sim_clock')
    clock_publisher = clock_node.create_publisher(Clock, '/clock', RELIABLE)

    def tick() -> None:
        if not sim['paused']:
            sim['now_ns'] += 10_000_000
            clock_publisher.publish(Clock(clock=Time(nanoseconds=sim['now_ns']).to_msg()))

    clock_node.create_timer(0.01, tick, clock=RclpyClock(clock_type=ClockType.STEADY_TIME))
    rig = RigConfig.from_file(REPO_ROOT / 'vla_ros' / 'config' / 'rig_surround.yaml')
    driver_node = ros.node('rig_driver')
    driver_node.set_parameters([Parameter('use_sim_time', value=True)])
    driver = RigDriver(driver_node, rig)
    listener = Listener(ros.node('listener'))
    start_node('-p', 'use_sim_time:=true')
    assert ros.spin_until(lambda: len(listener.statuses) >= 5, 30.0)
    stamp = listener.statuses[-1][1].header.stamp
    assert 1_000 <= stamp.sec <= 1_000 + 60, 'frames must carry simulated time'

    driver.alive['back'] = False
    ticks = driver.ticks
    assert ros.spin_until(lambda: driver.ticks > ticks, 5.0)
    sim['paused'] = True  # the round without 'back' is out; its deadline is 150 ms of sim time
    received = len(listener.statuses)
    ros.spin_until(lambda: False, 1.0)  # a wall-clock second: far past the deadline
    assert len(listener.statuses) == received, 'deadline fired while simulated time stood still'
    sim['paused'] = False
    assert ros.spin_until(lambda: len(listener.statuses) > received, 5.0)
    assert health(listener.statuses[received][1])['back'] != InputStatus.HEALTH_OK


def test_sync_benchmark_command_measures_both_transports(tmp_path: Path):
    """A short `vla bench sync` run: the real node, both transports, numbers and JSON."""
    path = tmp_path / 'bench.json'
    result = run_vla('bench', 'sync', '--duration', '1', '--json', str(path), timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'p99 ms' in result.stdout and 'node CPU ms' in result.stdout
    report = json.loads(path.read_text())
    assert [r['transport'] for r in report['results']] == ['raw', 'compressed']
    for measured in report['results']:
        assert measured['frames'] >= 5 and measured['complete_fraction'] >= 0.8
        assert 0 < measured['latency_p50_ms'] <= measured['latency_p99_ms']
        assert (
            measured['node_cpu_ms_per_frame'] > 0
            and measured['bare_decode_resize_ms_per_frame'] > 0
        )


def test_every_parameter_is_documented():
    documented = (REPO_ROOT / 'docs' / 'PERCEPTION.md').read_text(encoding='utf-8')
    missing = [spec.name for spec in PARAMETERS if f'`{spec.name}`' not in documented]
    assert missing == []
