"""SensorSyncCore: the composed core that the node, replay and the bag dataset all call."""

import cv2
import numpy as np
import pytest
from nav_msgs.msg import Odometry
from rosbags.typesys import Stores, get_typestore
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from vla_perception.health import Health
from vla_perception.image_preprocessing import ImageRejected
from vla_perception.rig import RigConfig
from vla_perception.sensor_sync import SensorSyncConfig, SensorSyncCore
from vla_perception.synchronizer import SyncConfig

MS = 1_000_000
W, H = 64, 48
RIG = RigConfig.from_dict(
    {
        'cameras': [
            {'name': 'front', 'extrinsic': {'xyz': [1, 0, 1.5], 'rpy': [0, 0, 0]}},
            {'name': 'left', 'extrinsic': {'xyz': [1, 0.5, 1.5], 'rpy': [0, 0, 1.57]}},
            {
                'name': 'jpeg',
                'transport': 'compressed',
                'extrinsic': {'xyz': [0, 0, 1.5], 'rpy': [0, 0, 3.14]},
            },
        ]
    }
)
STORE = get_typestore(Stores.ROS2_KILTED)


def make_core(**overrides) -> SensorSyncCore:
    config = SensorSyncConfig(
        SyncConfig(RIG.names, deadline_s=0.05), output_width=32, output_height=24, **overrides
    )
    return SensorSyncCore(RIG, config)


def pixels(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (H, W, 3), np.uint8)


def set_stamp(msg, stamp_ns: int):
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
    return msg


def rclpy_image(seed: int, stamp_ns: int) -> Image:
    return set_stamp(
        Image(height=H, width=W, encoding='bgr8', step=W * 3, data=pixels(seed).tobytes()),
        stamp_ns,
    )


def rclpy_jpeg(seed: int, stamp_ns: int) -> CompressedImage:
    data = cv2.imencode('.png', pixels(seed))[1].tobytes()  # lossless, so frames compare exactly
    return set_stamp(CompressedImage(format='png', data=data), stamp_ns)


def rosbags_copy(msg):
    """Return the same message as rosbags' dataclass (what the bag dataset reads)."""
    header = STORE.types['std_msgs/msg/Header'](
        stamp=STORE.types['builtin_interfaces/msg/Time'](
            sec=msg.header.stamp.sec, nanosec=msg.header.stamp.nanosec
        ),
        frame_id=msg.header.frame_id,
    )
    data = np.frombuffer(bytes(msg.data), np.uint8)
    if isinstance(msg, CompressedImage):
        return STORE.types['sensor_msgs/msg/CompressedImage'](
            header=header, format=msg.format, data=data
        )
    return STORE.types['sensor_msgs/msg/Image'](
        header=header,
        height=msg.height,
        width=msg.width,
        encoding=msg.encoding,
        is_bigendian=msg.is_bigendian,
        step=msg.step,
        data=data,
    )


def camera_info() -> CameraInfo:
    info = CameraInfo(width=W, height=H, distortion_model='plumb_bob', d=[0.0] * 5)
    info.k = [50.0, 0.0, W / 2, 0.0, 50.0, H / 2, 0.0, 0.0, 1.0]
    info.p = [50.0, 0.0, W / 2, 0.0, 0.0, 50.0, H / 2, 0.0, 0.0, 0.0, 1.0, 0.0]
    return info


def odometry(stamp_ns: int, x: float) -> Odometry:
    msg = set_stamp(Odometry(), stamp_ns)
    msg.pose.pose.position.x = x
    msg.pose.pose.orientation.w = 1.0
    return msg


def run_round(core: SensorSyncCore, stamp_ms: int, convert=lambda m: m, seed: int = 0):
    """Feed one image per camera (1 ms apart) and return the frame emitted, if any."""
    frame = None
    for index, name in enumerate(RIG.names):
        stamp = (stamp_ms + index) * MS
        make = rclpy_jpeg if name == 'jpeg' else rclpy_image
        core.on_image(name, convert(make(seed + index, stamp)), stamp + 2 * MS)
        frame = core.step(stamp + 2 * MS) or frame
    return frame


def with_intrinsics(core: SensorSyncCore) -> SensorSyncCore:
    for name in RIG.names:
        core.on_camera_info(name, camera_info())
    return core


def frame_pixels(frame) -> list[bytes]:
    return [camera.image.rgb.tobytes() for camera in frame.cameras]


def test_rosbags_and_rclpy_messages_give_identical_frames():
    """The bag dataset (rosbags) and the live node (rclpy) must see the same model input."""
    live = run_round(with_intrinsics(make_core()), 1000)
    offline = run_round(with_intrinsics(make_core()), 1000, convert=rosbags_copy)
    assert live.complete and offline.complete
    assert frame_pixels(live) == frame_pixels(offline)
    assert live.stamp_ns == offline.stamp_ns == 1002 * MS


def test_decoding_on_arrival_or_at_emission_gives_identical_frames():
    eager = run_round(with_intrinsics(make_core(decode_on_arrival=True)), 1000, seed=5)
    late = run_round(with_intrinsics(make_core(decode_on_arrival=False)), 1000, seed=5)
    single = run_round(with_intrinsics(make_core(preprocess_threads=1)), 1000, seed=5)
    assert frame_pixels(eager) == frame_pixels(late) == frame_pixels(single)
    expected = cv2.cvtColor(
        cv2.resize(pixels(5), (32, 24), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB
    )
    assert np.array_equal(eager.cameras[0].image.rgb, expected)


def test_camera_without_camera_info_is_invalid_until_it_arrives():
    core = make_core()
    core.on_camera_info('front', camera_info())
    core.on_camera_info('jpeg', camera_info())
    frame = run_round(core, 1000)
    assert {c.spec.name: c.health for c in frame.cameras}['left'] == Health.INVALID
    assert [r.reason for r in core.drain_rejections()] == ['no_camera_info']
    assert core.drain_rejections() == []
    core.on_camera_info('left', camera_info())
    assert run_round(core, 1100).complete


def test_corrupt_compressed_image_is_invalid_and_others_are_unaffected():
    core = with_intrinsics(make_core())
    for index, name in enumerate(('front', 'left')):
        core.on_image(name, rclpy_image(index, (1000 + index) * MS), 1003 * MS)
    broken = set_stamp(
        CompressedImage(format='jpeg', data=b'\xff\xd8\xff\xe0not-a-jpeg'), 1002 * MS
    )
    core.on_image('jpeg', broken, 1003 * MS)
    frame = core.step(1003 * MS)
    assert [c.health for c in frame.cameras] == [Health.OK, Health.OK, Health.INVALID]
    assert frame.cameras[2].image is None and frame.cameras[2].intrinsics is not None
    rejection = core.drain_rejections()[0]
    assert (rejection.camera, rejection.reason) == ('jpeg', 'corrupt_compressed')


def test_structurally_bad_image_is_refused_on_arrival():
    core = with_intrinsics(make_core())
    bad = rclpy_image(0, 1000 * MS)
    bad.encoding = '32FC1'
    with pytest.raises(ImageRejected, match="unsupported image encoding '32FC1'"):
        core.on_image('front', bad, 1001 * MS)
    assert core.rejections.by_camera['front']['encoding'] == 1


def test_frame_carries_odometry_interpolated_to_its_stamp():
    core = with_intrinsics(make_core())
    core.on_odometry(odometry(990 * MS, x=9.9))
    core.on_odometry(odometry(1010 * MS, x=10.1))
    frame = run_round(core, 1000)
    assert frame.odometry.health == Health.OK
    assert frame.odometry.sample.position[0] == pytest.approx(10.02)  # at 1002 ms


def test_non_finite_odometry_is_refused_by_name():
    msg = odometry(0, x=float('nan'))
    with pytest.raises(ValueError, match='odometry position is not finite'):
        make_core().on_odometry(msg)


def test_sync_and_rig_must_name_the_same_cameras():
    with pytest.raises(ValueError, match='differ from the rig'):
        SensorSyncCore(RIG, SensorSyncConfig(SyncConfig(('front',))))


def test_late_image_reused_as_stale_is_decoded():
    """A late image (older than the last frame) may still serve as a later frame's STALE image."""
    core = with_intrinsics(make_core())
    core.on_image('front', rclpy_image(0, 1000 * MS), 1000 * MS)
    core.on_image('jpeg', rclpy_jpeg(2, 1002 * MS), 1002 * MS)
    first = core.step(1060 * MS)  # 'left' sent nothing: the frame goes out at the deadline
    assert [c.health for c in first.cameras] == [Health.OK, Health.MISSING, Health.OK]
    core.on_image('left', rclpy_image(1, 1001 * MS), 1061 * MS)  # late: older than that frame
    core.on_image('front', rclpy_image(3, 1100 * MS), 1100 * MS)
    core.on_image('jpeg', rclpy_jpeg(4, 1102 * MS), 1102 * MS)
    second = core.step(1160 * MS)
    assert [c.health for c in second.cameras] == [Health.OK, Health.STALE, Health.OK]
    assert second.cameras[1].image is not None
