"""The sync node's SensorFrame bytes hold sensor_frame_message's fields where rclpy puts them."""

import numpy as np
import pytest
from rclpy.serialization import deserialize_message, serialize_message
from vla_msgs.msg import SensorFrame

from vla_perception.health import Health
from vla_perception.image_preprocessing import Intrinsics, PreparedImage
from vla_perception.odometry import OdometryAtFrame, OdometrySample
from vla_perception.rig import RigConfig, default_rig_path
from vla_perception.sensor_frame_bytes import sensor_frame_bytes
from vla_perception.sensor_sync import CameraImage, SyncedFrame
from vla_perception.sensor_sync_node import sensor_frame_message

RIG = RigConfig.from_file(default_rig_path())


def intrinsics(model: str, coefficients: int) -> Intrinsics:
    return Intrinsics(
        width=6,
        height=4,
        k=[[3.0, 0, 2.5], [0, 3.0, 1.5], [0, 0, 1]],
        d=np.linspace(-0.1, 0.1, coefficients),
        distortion_model=model,
        p=[[3.0, 0, 2.5, 0.5], [0, 3.0, 1.5, 0], [0, 0, 1, 0]],
    )


def camera(index: int, stamp_ns: int) -> CameraImage:
    """Cameras of every kind: with an image, without one, without intrinsics, odd sizes."""
    spec = RIG.cameras[index]
    if index == 1:  # missing: no image, intrinsics known
        return CameraImage(spec, Health.MISSING, 0, 0, None, intrinsics('plumb_bob', 5))
    if index == 2:  # no CameraInfo yet: neither
        return CameraImage(spec, Health.INVALID, stamp_ns - 3, -3, None, None)
    width = 6 + index  # odd widths put every field after the image at another alignment
    rgb = np.random.default_rng(index).integers(0, 256, (4, width, 3), np.uint8)
    info = intrinsics('rational_polynomial' if index == 3 else 'plumb_bob', 3 + index)
    image = PreparedImage(rgb=rgb, intrinsics=info)
    return CameraImage(
        spec,
        Health.STALE if index == 4 else Health.OK,
        stamp_ns + index,
        index * 1_000_000,
        image,
        info,
    )


def frame(stamp_ns: int, odometry: bool, frame_ids: tuple[str, str]) -> SyncedFrame:
    sample = OdometrySample(
        stamp_ns - 2_000_000,
        np.array([1.0, -2.0, 0.5]),
        np.array([0.0, 0.0, 0.38268343, 0.92387953]),
        np.array([10.0, 0.1, 0.0]),
        np.array([0.0, 0.0, 0.05]),
    )
    return SyncedFrame(
        stamp_ns=stamp_ns,
        sequence=2**33 + 5,
        epoch=3,
        complete=False,
        cameras=tuple(camera(i, stamp_ns) for i in range(len(RIG.cameras))),
        odometry=OdometryAtFrame(
            sample if odometry else None,
            Health.OK if odometry else Health.MISSING,
            -2_000_000 if odometry else 0,
        ),
        last_arrival_ns=stamp_ns + 5,
        odometry_frame_id=frame_ids[0],
        odometry_child_frame_id=frame_ids[1],
    )


@pytest.mark.parametrize('odometry', [True, False], ids=['odometry', 'no-odometry'])
@pytest.mark.parametrize('frame_ids', [('odom', 'base_link'), ('map', 'b')])
@pytest.mark.parametrize('stamp_ns', [1_700_000_000_123_456_789, 5])
def test_the_bytes_are_rclpys_serialization_of_the_message(odometry, frame_ids, stamp_ns):
    synced = frame(stamp_ns, odometry, frame_ids)
    raw = sensor_frame_bytes(synced)
    # The same fields at the same offsets; rclpy leaves its padding bytes unset, these are 0.
    expected = serialize_message(sensor_frame_message(synced))
    assert len(raw) == len(expected)
    assert deserialize_message(raw, SensorFrame) == deserialize_message(expected, SensorFrame)


def test_each_image_is_copied_once_into_the_bytes():
    synced = frame(10**18, True, ('odom', 'base_link'))
    raw = sensor_frame_bytes(synced)
    rgb = synced.cameras[0].image.rgb
    assert raw.count(rgb.tobytes()) == 1
    assert not np.shares_memory(np.frombuffer(raw, np.uint8), rgb)
