"""`vla bench sync`: the cost and latency of sensor_sync_node on six 1280x720 cameras at 10 Hz.

The real node runs as its own process on real DDS. This process publishes the cameras (raw
`rgb8`, then JPEG) and odometry, and listens to /vla/sensor_status, published right after each
SensorFrame. Added latency is the arrival of a frame's status minus the newest capture stamp of
its cameras (the driver stamps images when it publishes them), so it includes moving the images to
the node, matching, decoding, resizing and publishing the frame. CPU time is the node process's
own (user + system, from /proc). The bare cost is ImagePreprocessor.prepare on the same six
images, measured in this process in the same run: the ratio says what the node adds to the work
that cannot be avoided.

Then, in the same run, message_filters' ApproximateTimeSynchronizer beside the node's core on the
same recorded inputs, as recorded and under three faults (`sync_baseline`); it needs
message_filters (a full ROS 2 install, or ros-extras in the .venv).
"""

import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import Odometry
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from vla_msgs.msg import SensorStatus

from vla_perception.image_preprocessing import ImagePreprocessor, Intrinsics
from vla_perception.synchronizer import stamp_to_ns
from vla_perception.test_card import test_card
from vla_ros.install_paths import vla_ros_file
from vla_ros.process_stats import process_cpu_s
from vla_ros.qos import LATCHED, RELIABLE
from vla_ros.reports import write_json
from vla_tools.bench_harness import percentile, print_table

CAMERAS = ('front', 'front_left', 'front_right', 'back', 'back_left', 'back_right')
WIDTH, HEIGHT, RATE_HZ = 1280, 720, 10.0
OUTPUT_WIDTH, OUTPUT_HEIGHT = 448, 256
WARM_UP_S = 2.0
COLUMNS = [  # (title, SyncBenchmarkResult field) of the printed table
    ('transport', 'transport'),
    ('frames', 'frames'),
    ('rate Hz', 'output_rate_hz'),
    ('complete', 'complete_fraction'),
    ('p50 ms', 'latency_p50_ms'),
    ('p99 ms', 'latency_p99_ms'),
    ('arrive ms', 'newest_image_arrival_delay_ms'),
    ('process ms', 'node_processing_ms_mean'),
    ('node CPU ms', 'node_cpu_ms_per_frame'),
    ('bare ms', 'bare_decode_resize_ms_per_frame'),
    ('ratio', 'node_to_bare_ratio'),
]


@dataclass
class SyncBenchmarkResult:
    """Measured figures of one transport."""

    transport: str
    frames: int
    duration_s: float
    output_rate_hz: float
    complete_fraction: float
    latency_p50_ms: float
    latency_p99_ms: float
    newest_image_arrival_delay_ms: float  # capture stamp -> the node has it (mean, slowest camera)
    node_processing_ms_mean: float  # newest image arrived -> frame published, inside the node
    node_processing_ms_max: float
    node_cpu_ms_per_frame: float
    bare_decode_resize_ms_per_frame: float
    node_to_bare_ratio: float


def _rig_file(directory: Path, transport: str) -> Path:
    """Write the default six-camera rig with the given transport."""
    text = vla_ros_file('config/rig_surround.yaml').read_text(encoding='utf-8')
    path = directory / f'rig_{transport}.yaml'
    path.write_text(text.replace('transport: raw', f'transport: {transport}'), encoding='utf-8')
    return path


def _camera_info() -> CameraInfo:
    info = CameraInfo(width=WIDTH, height=HEIGHT, distortion_model='plumb_bob')
    info.k = [1000.0, 0.0, WIDTH / 2, 0.0, 1000.0, HEIGHT / 2, 0.0, 0.0, 1.0]
    info.p = [1000.0, 0.0, WIDTH / 2, 0.0, 0.0, 1000.0, HEIGHT / 2, 0.0, 0.0, 0.0, 1.0, 0.0]
    info.d = [0.0] * 5
    return info


def _messages(transport: str) -> list[Image | CompressedImage]:
    """One message per camera, with distinct content."""
    messages = []
    for index in range(len(CAMERAS)):
        card = test_card(index, WIDTH, HEIGHT)
        if transport == 'compressed':
            data = cv2.imencode(
                '.jpg', cv2.cvtColor(card, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90]
            )[1].tobytes()
            messages.append(CompressedImage(format='jpeg', data=data))
        else:
            messages.append(
                Image(
                    height=HEIGHT,
                    width=WIDTH,
                    encoding='rgb8',
                    step=WIDTH * 3,
                    data=card.tobytes(),
                )
            )
    return messages


def bare_decode_resize_ms(messages: list, repeats: int = 20) -> float:
    """CPU milliseconds to prepare one frame's images with the core alone (no ROS, no matching)."""
    cv2.setNumThreads(1)  # as the node runs it (see SensorSyncCore)
    preprocessor = ImagePreprocessor(OUTPUT_WIDTH, OUTPUT_HEIGHT, fast_resize=True)
    intrinsics = Intrinsics.from_camera_info(_camera_info())
    start = time.process_time()
    for _ in range(repeats):
        for message in messages:
            preprocessor.prepare(message, intrinsics)
    return (time.process_time() - start) / repeats * 1e3


def _mean(values) -> float:
    """Mean of diagnostic values given as text."""
    numbers = [float(value) for value in values]
    return sum(numbers) / len(numbers)


def run_transport(
    transport: str,
    duration_s: float,
    workdir: Path,
    node_command: list[str],
    progress: bool = True,
) -> SyncBenchmarkResult:
    """Measure one transport ('raw' or 'compressed')."""
    messages = _messages(transport)
    bare_ms = bare_decode_resize_ms(messages)
    context = Context()
    rclpy.init(context=context)
    executor = SingleThreadedExecutor(context=context)
    node = Node('sync_benchmark', context=context)
    executor.add_node(node)
    kind = CompressedImage if transport == 'compressed' else Image
    topics = [f'/sensing/camera/{name}' for name in CAMERAS]
    image_publishers = [
        node.create_publisher(
            kind,
            f'{topic}/image_raw' + ('/compressed' if transport == 'compressed' else ''),
            RELIABLE,
        )
        for topic in topics
    ]
    for topic in topics:
        node.create_publisher(CameraInfo, f'{topic}/camera_info', LATCHED).publish(_camera_info())
    odometry = node.create_publisher(Odometry, '/localization/kinematic_state', RELIABLE)
    samples: list[tuple[float, float, bool]] = []  # (receive time, latency s, complete)

    def on_status(status: SensorStatus) -> None:
        newest = max(stamp_to_ns(camera.stamp) for camera in status.cameras)
        now = node.get_clock().now().nanoseconds
        samples.append((now * 1e-9, (now - newest) * 1e-9, status.complete))

    node.create_subscription(SensorStatus, '/vla/sensor_status', on_status, RELIABLE)
    diagnostics: list[dict[str, dict[str, str]]] = []
    node.create_subscription(
        DiagnosticArray,
        '/diagnostics',
        lambda array: diagnostics.append(
            {s.name: {kv.key: kv.value for kv in s.values} for s in array.status}
        ),
        RELIABLE,
    )

    def publish_cameras() -> None:
        stamp = node.get_clock().now().to_msg()
        for publisher, message in zip(image_publishers, messages, strict=True):
            message.header.stamp = stamp
            publisher.publish(message)
        odometry_message = Odometry(child_frame_id='base_link')
        odometry_message.header.stamp, odometry_message.header.frame_id = stamp, 'odom'
        odometry_message.pose.pose.orientation.w = 1.0
        odometry.publish(odometry_message)

    node.create_timer(1.0 / RATE_HZ, publish_cameras)
    process = subprocess.Popen(
        [
            *node_command,
            '--ros-args',
            '-p',
            f'rig_file:={_rig_file(workdir, transport)}',
            '-p',
            f'output_width:={OUTPUT_WIDTH}',
            '-p',
            f'output_height:={OUTPUT_HEIGHT}',
            '--log-level',
            'warn',
        ]
    )
    try:
        end = time.monotonic() + 30.0
        while not samples and time.monotonic() < end:
            executor.spin_once(timeout_sec=0.05)
        if not samples:
            raise RuntimeError('sensor_sync_node produced no frame within 30 s')
        warm_end = time.monotonic() + WARM_UP_S
        while time.monotonic() < warm_end:
            executor.spin_once(timeout_sec=0.05)
        first, first_diagnostics = len(samples), len(diagnostics)
        cpu_start, wall_start = process_cpu_s(process.pid), time.monotonic()
        while time.monotonic() - wall_start < duration_s:
            executor.spin_once(timeout_sec=0.05)
            if progress:
                done = (time.monotonic() - wall_start) / duration_s
                print(
                    f'\r  {transport:<10} [{"#" * int(30 * done):<30}] {len(samples) - first} '
                    'frames',
                    end='',
                    file=sys.stderr,
                    flush=True,
                )
        cpu_s, wall_s = process_cpu_s(process.pid) - cpu_start, time.monotonic() - wall_start
        if progress:
            print(file=sys.stderr)
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
        node.destroy_node()
        executor.shutdown()
        context.try_shutdown()
    window = samples[first:]
    periods = diagnostics[first_diagnostics:]
    arrival = max(
        _mean(p[f'sensor_sync_node: camera {name}']['arrival_delay_ms_mean'] for p in periods)
        for name in CAMERAS
    )
    processing = [p['sensor_sync_node: frames'] for p in periods]
    latencies_ms = np.array([latency for _, latency, _ in window]) * 1e3
    frames = len(window)
    node_ms = cpu_s / max(frames, 1) * 1e3
    return SyncBenchmarkResult(
        transport=transport,
        frames=frames,
        duration_s=round(wall_s, 3),
        output_rate_hz=round(frames / wall_s, 2),
        complete_fraction=round(sum(complete for *_, complete in window) / max(frames, 1), 3),
        latency_p50_ms=percentile(latencies_ms, 50, 2),
        latency_p99_ms=percentile(latencies_ms, 99, 2),
        newest_image_arrival_delay_ms=round(arrival, 2),
        node_processing_ms_mean=round(_mean(p['processing_ms_mean'] for p in processing), 2),
        node_processing_ms_max=round(max(float(p['processing_ms_max']) for p in processing), 2),
        node_cpu_ms_per_frame=round(node_ms, 2),
        bare_decode_resize_ms_per_frame=round(bare_ms, 2),
        node_to_bare_ratio=round(node_ms / bare_ms, 2),
    )


BASELINE_COLUMNS = [  # (title, SyncOutcome field) of the side-by-side table
    ('condition', 'fault'),
    ('synchroniser', 'synchroniser'),
    ('frames', 'frames'),
    ('complete', 'complete_frames'),
    ('after fault', 'frames_after_fault'),
    ('resets', 'resets'),
    ('p50 ms', 'latency_p50_ms'),
    ('p99 ms', 'latency_p99_ms'),
    ('stamp err ms', 'stamp_error_p99_ms'),
]


def run_baseline() -> dict[str, object] | None:
    """Compare with message_filters on recorded inputs; print the table; None without it."""
    from vla_tools.sync_baseline import compare

    try:
        outcomes, facts = compare()
    except ModuleNotFoundError as error:
        print(f'message_filters baseline skipped: {error} (ros-extras, see README)')
        return None
    print(
        f'\nthe core beside message_filters ApproximateTimeSynchronizer (queue '
        f'{facts["message_filters"]["queue_size"]}, slop {facts["message_filters"]["slop_s"]} s) '
        f'on {facts["recording"]} x{facts["loops"]} ({facts["image_messages"]} images, '
        f'{facts["duration_s"]} s); faults start a third of the way in'
    )
    print_table(
        [(title, 16) for title, _ in BASELINE_COLUMNS],
        ([getattr(outcome, field) for _, field in BASELINE_COLUMNS] for outcome in outcomes),
    )
    return {**facts, 'outcomes': [asdict(outcome) for outcome in outcomes]}


def run(duration_s: float, json_path: Path | None) -> list[SyncBenchmarkResult]:
    """Run both transports and the message_filters baseline, print tables, write JSON if asked."""
    node_command = [sys.executable, '-m', 'vla_perception.sensor_sync_node']
    os.environ.setdefault(
        'FASTDDS_DEFAULT_PROFILES_FILE', str(vla_ros_file('config/fastdds_large_data.xml'))
    )
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')  # a local measurement
    print(
        f'sensor_sync_node: six {WIDTH}x{HEIGHT} cameras at {RATE_HZ:.0f} Hz -> '
        f'{OUTPUT_WIDTH}x{OUTPUT_HEIGHT}, {duration_s:.0f} s per transport after '
        f'{WARM_UP_S:.0f} s warm-up; {os.cpu_count()} CPUs'
    )
    with tempfile.TemporaryDirectory() as workdir:
        results = [
            run_transport(transport, duration_s, Path(workdir), node_command)
            for transport in ('raw', 'compressed')
        ]
    print_table(
        [(title, 11) for title, _ in COLUMNS],
        ([getattr(result, field) for _, field in COLUMNS] for result in results),
    )
    baseline = run_baseline()
    if json_path is not None:
        write_json(
            json_path,
            {
                'benchmark': 'sync',
                'cameras': len(CAMERAS),
                'input': f'{WIDTH}x{HEIGHT}',
                'output': f'{OUTPUT_WIDTH}x{OUTPUT_HEIGHT}',
                'rate_hz': RATE_HZ,
                'cpus': os.cpu_count(),
                'results': [asdict(r) for r in results],
                'baseline': baseline,
            },
        )
    return results
