"""The simulator's message conversions: every field round-trips, frames and layouts are right."""

import math

import numpy as np
import pytest
from vla_msgs.msg import ControlCommand, Instruction, Obstacle, ObstacleArray

from vla_perception.odometry import OdometrySample, yaw_of
from vla_perception.rig import CameraSpec, RigConfig
from vla_ros.install_paths import vla_ros_file
from vla_sim.bev_ground_truth import BevGrid
from vla_sim.instructions import InstructionGenerator, Intent, Split
from vla_sim.scene import Pose2D
from vla_sim.sim_messages import (
    camera_info_message,
    clock_message,
    command_from_message,
    grid_messages,
    image_message,
    instruction_message,
    obstacles_message,
    odometry_message,
)
from vla_sim.simulation import ObstacleTruth
from vla_sim.world import EgoState

STAMP_NS = 12_345_678_901


def test_image_round_trips_as_rgb8() -> None:
    rgb = np.random.default_rng(0).integers(0, 256, (4, 6, 3), dtype=np.uint8)
    message = image_message(rgb, STAMP_NS, 'camera_front_optical_frame')
    assert (message.header.stamp.sec, message.header.stamp.nanosec) == (12, 345_678_901)
    assert message.header.frame_id == 'camera_front_optical_frame'
    assert (message.height, message.width, message.encoding, message.step) == (4, 6, 'rgb8', 18)
    decoded = np.frombuffer(bytes(message.data), np.uint8).reshape(4, 6, 3)
    np.testing.assert_array_equal(decoded, rgb)


@pytest.mark.parametrize(
    'image', [np.zeros((4, 6), np.uint8), np.zeros((4, 6, 3), np.float32)], ids=['grey', 'float']
)
def test_image_refuses_what_is_not_rgb8(image: np.ndarray) -> None:
    with pytest.raises(ValueError, match='rgb8'):
        image_message(image, STAMP_NS, 'frame')


def test_camera_info_matches_the_rig_intrinsics() -> None:
    for spec in RigConfig.from_file(vla_ros_file('config/rig_surround.yaml')).cameras:
        message = camera_info_message(spec, STAMP_NS)
        i = spec.intrinsics
        assert message.header.frame_id == spec.frame_id
        assert (message.width, message.height) == (i.width, i.height)
        assert list(message.k) == [i.fx, 0.0, i.cx, 0.0, i.fy, i.cy, 0.0, 0.0, 1.0]
        assert list(message.p) == [i.fx, 0.0, i.cx, 0.0, 0.0, i.fy, i.cy, 0.0, 0.0, 0.0, 1.0, 0.0]
        assert list(message.r) == np.eye(3).ravel().tolist()
        assert message.distortion_model == 'plumb_bob'
        assert list(message.d) == [0.0] * 5


def test_camera_info_needs_intrinsics() -> None:
    spec = CameraSpec('front', '/cam', False, 'optical', (0.0, 0.0, 0.0), (0.0, 0.0, 0.0, 1.0))
    with pytest.raises(ValueError, match='front has no intrinsics'):
        camera_info_message(spec, STAMP_NS)


def test_odometry_pose_in_odom_and_twist_in_base_link() -> None:
    ego = EgoState(Pose2D(10.0, -3.0, 2.5), 21.0, 0.2, -1.0, ('a', 'b', 1))
    message = odometry_message(ego, STAMP_NS)
    assert (message.header.frame_id, message.child_frame_id) == ('odom', 'base_link')
    sample = OdometrySample.from_message(message)  # what the stack's nodes read
    np.testing.assert_allclose(sample.position, [10.0, -3.0, 0.0])
    assert yaw_of(message.pose.pose.orientation) == pytest.approx(2.5)
    np.testing.assert_allclose(sample.linear_velocity, [21.0, 0.0, 0.0])
    np.testing.assert_allclose(sample.angular_velocity, [0.0, 0.0, 0.2])
    for covariance in (message.pose.covariance, message.twist.covariance):
        matrix = np.asarray(covariance).reshape(6, 6)
        assert np.all(np.diag(matrix) > 0.0)
        assert np.count_nonzero(matrix - np.diag(np.diag(matrix))) == 0


def test_obstacles_fill_every_field_in_odom() -> None:
    truth = ObstacleTruth(
        7, Obstacle.CLASS_TRUCK, 50.0, 4.0, -0.3, 12.0, 2.5, 3.6, 20.0, -1.5, 0.4, 0.2
    )
    message = obstacles_message((truth,), STAMP_NS)
    assert message.header.frame_id == 'odom'
    assert message.source == ObstacleArray.SOURCE_SIMULATION
    (obstacle,) = message.obstacles
    assert (obstacle.id, obstacle.classification) == (7, Obstacle.CLASS_TRUCK)
    assert obstacle.existence_probability == 1.0
    position = obstacle.pose.position
    assert (position.x, position.y, position.z) == (50.0, 4.0, 1.8)
    assert yaw_of(obstacle.pose.orientation) == pytest.approx(-0.3)
    dimensions = obstacle.dimensions
    assert (dimensions.x, dimensions.y, dimensions.z) == (12.0, 2.5, 3.6)
    assert (obstacle.velocity.x, obstacle.velocity.y, obstacle.velocity.z) == (20.0, -1.5, 0.0)
    assert (obstacle.acceleration.x, obstacle.acceleration.y, obstacle.acceleration.z) == (0, 0, 0)
    assert obstacle.position_stddev_m == pytest.approx(0.4)
    assert obstacle.velocity_stddev_mps == pytest.approx(0.2)
    assert obstacles_message((), STAMP_NS).obstacles == []  # none seen: all clear


def test_bev_layout_is_the_neural_map_convention() -> None:
    grid = BevGrid(x_range=(-4.0, 8.0), y_range=(-3.0, 3.0), cell_m=1.0)
    rows, cols = grid.shape
    mask = np.zeros((rows, cols), bool)
    mask[9, 1] = True  # x = -4 + 9.5 = 5.5 m ahead, y = -3 + 1.5 = -1.5 m (right)
    messages = grid_messages({'vehicle': mask, 'drivable': ~mask}, grid, STAMP_NS)
    message = messages['vehicle']
    info = message.info
    assert message.header.frame_id == 'base_link'
    assert (info.width, info.height, info.resolution) == (rows, cols, 1.0)
    assert (info.origin.position.x, info.origin.position.y) == (-4.0, -3.0)
    assert info.origin.orientation.w == 1.0
    data = np.asarray(message.data)
    (index,) = np.flatnonzero(data)
    assert data[index] == 100
    column, row = divmod(index, info.width)  # OccupancyGrid: row-major in (y, x)
    assert info.origin.position.x + (row + 0.5) * info.resolution == 5.5
    assert info.origin.position.y + (column + 0.5) * info.resolution == -1.5
    assert set(messages['drivable'].data) == {0, 100}
    with pytest.raises(ValueError, match='not the grid'):
        grid_messages({'vehicle': mask.T}, grid, STAMP_NS)


def test_instruction_carries_the_scenario_sample() -> None:
    sample = InstructionGenerator(Split.TEST, 3).sample(Intent.SET_SPEED, 16.7)
    message = instruction_message(sample, STAMP_NS, seed=3)
    assert message.text == sample.text
    assert message.id == f'{sample.paraphrase_id}@3'
    assert message.source == Instruction.SOURCE_SCENARIO
    assert instruction_message(sample, STAMP_NS).id == sample.paraphrase_id


def test_clock() -> None:
    clock = clock_message(STAMP_NS).clock
    assert (clock.sec, clock.nanosec) == (12, 345_678_901)


def command(steering: float, acceleration: float, defined: bool = True) -> ControlCommand:
    message = ControlCommand()
    message.lateral.steering_tire_angle = steering
    message.longitudinal.acceleration = acceleration
    message.longitudinal.is_defined_acceleration = defined
    return message


def test_command_round_trips() -> None:
    result = command_from_message(command(0.25, -2.5))
    assert (result.steering_tire_angle_rad, result.acceleration_mps2) == (0.25, -2.5)


@pytest.mark.parametrize(
    ('message', 'field'),
    [
        (command(math.nan, 0.0), 'lateral.steering_tire_angle is not finite'),
        (command(0.0, math.inf), 'longitudinal.acceleration is not finite'),
        (command(0.0, 1.0, defined=False), 'longitudinal.acceleration is not defined'),
    ],
    ids=['nan steering', 'infinite acceleration', 'undefined acceleration'],
)
def test_command_refuses_unusable_values_by_name(message: ControlCommand, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        command_from_message(message)
