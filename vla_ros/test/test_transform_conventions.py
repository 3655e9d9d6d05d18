"""The project's own quaternion, yaw and matrix conversions against tf_transformations.

The nodes and cores keep their own short numpy conversions (docs/PERCEPTION.md, "Conversions"
says why: they also run where tf_transformations is absent, and some are vectorised over whole
trajectories). tf_transformations, what ROS code uses for these, is the reference here: the same
REP 103 conventions (x, y, z, w quaternions; fixed-axis roll, pitch, yaw) on random rotations.
"""

import numpy as np
import pytest
from std_msgs.msg import Header

from repo_paths import require_ros_extras

require_ros_extras()

import tf_transformations as tft  # noqa: E402

from vla_model.trajectory_messages import trajectory_arrays, trajectory_message  # noqa: E402
from vla_perception.odometry import quaternion_yaw, slerp  # noqa: E402
from vla_perception.rig import quaternion_from_matrix, rotation_from_rpy  # noqa: E402

RNG = np.random.default_rng(17)
ANGLES = RNG.uniform(-np.pi, np.pi, size=(200, 3)) * np.array([1.0, 0.49, 1.0])  # |pitch| < pi/2


@pytest.mark.parametrize('rpy', ANGLES[:50])
def test_rig_rotation_and_quaternion_follow_tf_transformations(rpy: np.ndarray):
    matrix = rotation_from_rpy(*rpy)
    np.testing.assert_allclose(matrix, tft.euler_matrix(*rpy, 'sxyz')[:3, :3], atol=1e-12)
    ours = np.array(quaternion_from_matrix(matrix))
    reference = np.array(tft.quaternion_from_euler(*rpy))
    reference = reference if reference[3] >= 0 else -reference  # ours picks w >= 0
    np.testing.assert_allclose(ours, reference, atol=1e-9)


def test_yaw_of_any_norm_and_slerp_follow_tf_transformations():
    for (roll, pitch, yaw), scale in zip(ANGLES, RNG.uniform(0.5, 2.0, len(ANGLES)), strict=True):
        q = np.array(tft.quaternion_from_euler(roll, pitch, yaw))
        assert quaternion_yaw(*(scale * q)) == pytest.approx(tft.euler_from_quaternion(q)[2])
    for first, second, fraction in zip(
        ANGLES[:100], ANGLES[100:], RNG.uniform(0, 1, 100), strict=True
    ):
        q0 = np.array(tft.quaternion_from_euler(*first))
        q1 = np.array(tft.quaternion_from_euler(*second))
        ours = slerp(q0, q1, fraction)
        reference = np.array(tft.quaternion_slerp(q0, q1, fraction, shortestpath=True))
        # Same rotation: equal up to the sign of the whole quaternion.
        assert abs(float(np.dot(ours, reference))) == pytest.approx(1.0, abs=1e-9)


def test_trajectory_yaws_become_the_quaternions_tf_transformations_gives():
    yaws = ANGLES[:, 2]
    n = len(yaws)
    poses = np.column_stack([np.arange(n, dtype=float), np.zeros(n), yaws])
    zeros = np.zeros(n)
    message = trajectory_message(Header(), 0, np.arange(n) * 0.1, poses, zeros, zeros, zeros)
    for point, yaw in zip(message.points, yaws, strict=True):
        q = point.pose.orientation
        np.testing.assert_allclose(
            (q.x, q.y, q.z, q.w), tft.quaternion_from_euler(0.0, 0.0, yaw), atol=1e-12
        )
    np.testing.assert_allclose(trajectory_arrays(message)[1][:, 2], yaws, atol=1e-12)
