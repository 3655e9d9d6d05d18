"""Rig files, input health values, and odometry interpolation."""

import numpy as np
import pytest
from vla_msgs.msg import InputStatus

from repo_paths import REPO_ROOT
from vla_model.bev_geometry import rotation_from_quaternion
from vla_perception.health import Health
from vla_perception.odometry import OdometryBuffer, OdometrySample
from vla_perception.rig import CameraIntrinsics, RigConfig

MS = 1_000_000
DEFAULT_RIG = REPO_ROOT / 'vla_ros' / 'config' / 'rig_surround.yaml'


def test_health_values_are_the_message_constants():
    assert {h.name: h.value for h in Health} == {
        'OK': InputStatus.HEALTH_OK,
        'STALE': InputStatus.HEALTH_STALE,
        'MISSING': InputStatus.HEALTH_MISSING,
        'INVALID': InputStatus.HEALTH_INVALID,
    }


def test_default_rig_has_six_cameras_looking_where_their_names_say():
    rig = RigConfig.from_file(DEFAULT_RIG)
    assert rig.names == ('front', 'front_left', 'front_right', 'back', 'back_left', 'back_right')
    views = {
        c.name: rotation_from_quaternion(c.rotation)[:, 2] for c in rig.cameras
    }  # optical z in base_link
    assert np.allclose(views['front'], [1, 0, 0])
    assert views['front_left'][1] > 0.5 and views['front_right'][1] < -0.5
    assert np.allclose(views['back'], [-1, 0, 0], atol=1e-4)
    front = rig.cameras[0]
    assert front.image_topic == '/sensing/camera/front/image_raw'
    assert front.info_topic == '/sensing/camera/front/camera_info'
    assert front.frame_id == 'camera_front_optical_frame'
    assert np.allclose(front.rotation, (-0.5, 0.5, -0.5, 0.5))  # the standard optical rotation
    # The simulator renders the model's input size directly, about 70 deg wide per camera.
    model_input = CameraIntrinsics(width=448, height=256, fx=320.0, fy=320.0, cx=224.0, cy=128.0)
    assert all(camera.intrinsics == model_input for camera in rig.cameras)
    assert np.degrees(2 * np.arctan(224 / 320)) == pytest.approx(70.0, abs=0.1)


def test_optical_axes_follow_rep_103():
    rig = RigConfig.from_dict(
        {'cameras': [{'name': 'f', 'extrinsic': {'xyz': [0, 0, 0], 'rpy': [0, 0, 0]}}]}
    )
    axes = rotation_from_quaternion(rig.cameras[0].rotation)
    assert np.allclose(axes[:, 0], [0, -1, 0])  # image x: right of the vehicle
    assert np.allclose(axes[:, 1], [0, 0, -1])  # image y: down
    assert rig.cameras[0].intrinsics is None  # optional: live cameras use their CameraInfo


def test_compressed_transport_subscribes_to_the_compressed_topic():
    rig = RigConfig.from_dict(
        {
            'cameras': [
                {
                    'name': 'f',
                    'transport': 'compressed',
                    'extrinsic': {'xyz': [0, 0, 0], 'rpy': [0, 0, 0]},
                }
            ]
        }
    )
    assert rig.cameras[0].image_topic == '/sensing/camera/f/image_raw/compressed'


def _camera(**intrinsics) -> dict:
    """Return a camera entry with the default intrinsics, some replaced (None: left out)."""
    values = {'width': 448, 'height': 256, 'fx': 320.0, 'fy': 320.0, 'cx': 224.0, 'cy': 128.0}
    values.update(intrinsics)
    values = {key: value for key, value in values.items() if value is not None}
    return {'name': 'f', 'extrinsic': {'xyz': [0, 0, 0], 'rpy': [0, 0, 0]}, 'intrinsics': values}


def test_intrinsics_are_read_from_the_rig_file():
    rig = RigConfig.from_dict({'cameras': [_camera(fx=500, cx=0.5)]})
    assert rig.cameras[0].intrinsics == CameraIntrinsics(448, 256, 500.0, 320.0, 0.5, 128.0)
    assert isinstance(rig.cameras[0].intrinsics.fx, float)


@pytest.mark.parametrize(
    ('cameras', 'message'),
    [
        ([], 'non-empty "cameras" list'),
        ([{'extrinsic': {'xyz': [0, 0, 0], 'rpy': [0, 0, 0]}}], 'camera #0 has no name'),
        ([{'name': 'f', 'transport': 'ffmpeg', 'extrinsic': {}}], "transport 'ffmpeg'"),
        ([{'name': 'f', 'extrinsic': {'xyz': [0, 0], 'rpy': [0, 0, 0]}}], '3 finite numbers'),
        ([{'name': 'f', 'extrinsic': {'xyz': [0, 0, 0], 'rpy': [0, 0, 0]}}] * 2, 'f repeated'),
        ([_camera(width=0)], 'camera f: intrinsics width must be a positive integer, got 0'),
        ([_camera(height=2.5)], 'camera f: intrinsics height must be a positive integer'),
        ([_camera(fx=-320.0)], 'camera f: intrinsics focal lengths must be positive'),
        ([_camera(fy='long')], "camera f: intrinsics fy must be a number, got 'long'"),
        ([_camera(cx=448.0)], 'camera f: intrinsics principal point .* outside the 448x256 image'),
        ([_camera(cy=-1.0)], 'camera f: intrinsics principal point .* outside'),
        ([_camera(cy=None)], 'camera f: intrinsics need exactly the keys width, height'),
        ([_camera(skew=0.0)], 'camera f: intrinsics need exactly the keys'),
    ],
)
def test_bad_rig_is_refused_with_the_reason(tmp_path, cameras, message):
    path = tmp_path / 'rig.yaml'
    path.write_text(f'cameras: {cameras}\n')
    with pytest.raises(ValueError, match=f'rig file {path}: .*{message}'):
        RigConfig.from_file(path)


def test_missing_rig_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match='no_rig.yaml does not exist'):
        RigConfig.from_file(tmp_path / 'no_rig.yaml')


def sample(stamp_ms: float, x: float, yaw: float, speed: float) -> OdometrySample:
    return OdometrySample(
        round(stamp_ms * MS),
        np.array([x, 0.0, 0.0]),
        np.array([0.0, 0.0, np.sin(yaw / 2), np.cos(yaw / 2)]),
        np.array([speed, 0.0, 0.0]),
        np.zeros(3),
    )


def test_odometry_is_interpolated_between_the_samples_around_the_frame():
    odometry = OdometryBuffer(
        capacity=10, max_skew_ns=50 * MS, timeout_ns=200 * MS, time_jump_ns=500 * MS
    )
    odometry.add(sample(0, x=0.0, yaw=0.0, speed=10.0))
    odometry.add(sample(20, x=0.2, yaw=0.2, speed=12.0))
    result = odometry.at(15 * MS)
    assert result.health == Health.OK and result.skew_ns == 5 * MS
    assert np.allclose(result.sample.position, [0.15, 0, 0])
    assert np.isclose(
        2 * np.arctan2(result.sample.orientation[2], result.sample.orientation[3]), 0.15
    )
    assert np.isclose(result.sample.linear_velocity[0], 11.5)


@pytest.mark.parametrize(
    ('frame_ms', 'expected'),
    [(60, Health.OK), (100, Health.STALE), (300, Health.MISSING), (-60, Health.STALE)],
)
def test_odometry_health_outside_the_samples(frame_ms, expected):
    odometry = OdometryBuffer(
        capacity=10, max_skew_ns=50 * MS, timeout_ns=200 * MS, time_jump_ns=500 * MS
    )
    odometry.add(sample(0, 0.0, 0.0, 0.0))
    odometry.add(sample(20, 0.0, 0.0, 0.0))
    assert odometry.at(frame_ms * MS).health == expected


def test_odometry_buffer_is_bounded_and_drops_out_of_order():
    odometry = OdometryBuffer(
        capacity=5, max_skew_ns=50 * MS, timeout_ns=200 * MS, time_jump_ns=500 * MS
    )
    for k in range(100):
        odometry.add(sample(k * 10, 0.0, 0.0, 0.0))
    odometry.add(sample(985, 0.0, 0.0, 0.0))  # late, but not a time jump
    assert odometry.out_of_order == 1 and odometry.resets == 0
    assert odometry.at(0).health == Health.MISSING  # only the last 5 samples (950-990 ms) remain
    assert odometry.at(970 * MS).health == Health.OK


def test_odometry_restarts_when_time_runs_backwards():
    odometry = OdometryBuffer(
        capacity=10, max_skew_ns=50 * MS, timeout_ns=200 * MS, time_jump_ns=500 * MS
    )
    odometry.add(sample(10_000, 5.0, 0.0, 0.0))
    odometry.add(sample(0, 1.0, 0.0, 0.0))  # a bag loop, 10 s back
    assert odometry.resets == 1
    assert np.allclose(odometry.at(0).sample.position, [1, 0, 0])
