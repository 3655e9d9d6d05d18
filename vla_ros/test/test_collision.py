"""The swept-footprint collision rule, against conflict times worked out by hand.

The default ego box (4.8 x 1.9 m, base_link 1.0 m ahead of the rear bumper, 0.1 m margin) spans
x in [-1.1, 3.9] and y in [-1.05, 1.05] around base_link.
"""

import math
import re

import numpy as np
import pytest
from vla_msgs.msg import Obstacle, ObstacleArray

from vla_perception.odometry import yaw_of
from vla_planning.collision import (
    Lead,
    Obstacles,
    VehicleShape,
    boxes_overlap,
    check_collision,
    find_lead,
    first_conflict_s,
)
from vla_planning.safety_rules import Verdict
from vla_planning.timed_path import TimedPath, from_plan

SHAPE = VehicleShape()
TIMES = np.arange(1, 7) * 0.5


def straight(speed_mps: float) -> np.ndarray:
    return np.stack([speed_mps * TIMES, 0 * TIMES, 0 * TIMES], -1)


def path(poses: np.ndarray) -> TimedPath:
    return from_plan(TIMES, poses)


def obstacles(*boxes: tuple[float, float, float, float, float, float, float]) -> Obstacles:
    """Boxes as (x, y, yaw, length, width, vx, vy)."""
    data = np.array(boxes, dtype=float).reshape(-1, 7)
    return Obstacles(data[:, 0:2], data[:, 2], data[:, 3:5], data[:, 5:7])


def test_stopped_car_ahead_is_hit_when_the_bumpers_meet():
    # Front bumper 10 t + 3.9 reaches the car's rear 20 - 2.25 = 17.75 at t = 1.385 s.
    conflict = first_conflict_s(path(straight(10.0)), obstacles((20, 0, 0, 4.5, 1.8, 0, 0)), SHAPE)
    assert conflict == pytest.approx(1.4)  # the first 0.1 s sample after 1.385 s
    assert check_collision('collision.swept', conflict, 1.5).verdict == Verdict.EMERGENCY


def test_cars_in_the_next_lane_and_ahead_at_the_same_speed_are_not_hit():
    others = obstacles((20, 3.5, 0, 4.5, 1.8, 0, 0), (20, 0, 0, 4.5, 1.8, 10, 0))
    conflict = first_conflict_s(path(straight(10.0)), others, SHAPE)
    assert conflict == math.inf
    assert check_collision('collision.swept', conflict, 1.5).verdict == Verdict.PASS


def test_crossing_pedestrian_is_hit_when_both_ranges_overlap():
    # Pedestrian 0.5 m box at (15, -5) walking +y at 2 m/s: in the ego's y range from 1.85 s;
    # the ego at 5 m/s covers x = 14.75 from 2.17 s: first overlap at the 2.2 s sample.
    walker = obstacles((15, -5, 0, 0.5, 0.5, 0, 2))
    conflict = first_conflict_s(path(straight(5.0)), walker, SHAPE)
    assert conflict == pytest.approx(2.2)
    assert check_collision('collision.swept', conflict, 1.5).verdict == Verdict.OVERRIDE
    # At 10 m/s the ego is past x = 15.25 at 1.64 s, before the walker arrives at 1.85 s.
    assert first_conflict_s(path(straight(10.0)), walker, SHAPE) == math.inf


def test_obstacle_between_two_plan_points_is_not_missed():
    # Plan points 12.5 m apart at 25 m/s; debris at x = 7.5 lies between the origin and the
    # first point. Front bumper 25 t + 3.9 reaches 7.25 at 0.134 s: the 0.2 s sample.
    debris = obstacles((7.5, 0, 0, 0.5, 0.5, 0, 0))
    assert first_conflict_s(path(straight(25.0)), debris, SHAPE) == pytest.approx(0.2)


def test_turning_plan_sweeps_its_heading():
    # A 90-degree left turn: the box points +y at the end, so it reaches an obstacle to the left.
    heading = np.linspace(np.pi / 12, np.pi / 2, 6)
    radius = 10.0
    poses = np.column_stack([radius * np.sin(heading), radius * (1 - np.cos(heading)), heading])
    left = obstacles((10, 13, 0, 2.0, 2.0, 0, 0))
    assert math.isfinite(first_conflict_s(path(poses), left, SHAPE))
    assert first_conflict_s(path(straight(5.0)), left, SHAPE) == math.inf


def test_separating_axes_see_past_overlapping_bounding_boxes():
    # A 2 x 2 square at the origin and the same square turned 45 degrees: its corner reaches
    # 1.414 m from its centre along the diagonal, so it touches the square's corner (1, 1)
    # while its centre is within (1 + 1.414) / sqrt(2) = 1.707 m on both axes.
    one, zero, half = np.ones(2), 0.0, np.ones(2)
    turned = np.pi / 4
    far = boxes_overlap(np.zeros(2), zero, half, np.array([1.75, 1.75]), turned, half)
    near = boxes_overlap(np.zeros(2), zero, half, np.array([1.65, 1.65]), turned, half)
    assert not far and near  # axis-aligned boxes around them would overlap in both cases
    assert boxes_overlap(np.zeros(2), zero, one, np.array([2.0, 0.0]), zero, one)  # touching
    assert not boxes_overlap(np.zeros(2), zero, one, np.array([2.01, 0.0]), zero, one)


def test_a_car_closing_in_from_behind_is_not_the_egos_conflict():
    # A faster car in the ego's lane 8 m behind, closing at 10 m/s: it reaches the ego's rear
    # bumper, but braking harder would only make that worse (RSS: the follower is responsible).
    follower = obstacles((-8, 0, 0, 4.5, 1.8, 20, 0))
    assert first_conflict_s(path(straight(10.0)), follower, SHAPE) == math.inf


def test_the_horizon_limits_how_far_the_check_looks():
    parked = obstacles((40, 0, 0, 4.5, 1.8, 0, 0))  # front bumper reaches 37.75 m at 3.385 s
    long_plan = from_plan(
        np.arange(1, 11) * 0.5, np.stack([np.arange(1, 11) * 5.0] + [np.zeros(10)] * 2, -1)
    )
    assert first_conflict_s(long_plan, parked, SHAPE) == pytest.approx(3.4)
    assert first_conflict_s(long_plan, parked, SHAPE, horizon_s=3.0) == math.inf


def test_moved_obstacles_keep_their_velocity():
    moved = obstacles((1, 2, 0.3, 4, 2, 3, -1)).moved(0.5)
    assert moved.centres[0] == pytest.approx([2.5, 1.5])
    assert moved.velocities[0] == pytest.approx([3, -1])


def test_lead_vehicle_gap_is_bumper_to_bumper_along_the_path():
    straight_ahead = np.array([[0.0, 0.0], [10.0, 0.0]])
    cars = obstacles(
        (30, 0.5, 0, 4.0, 1.8, 8, 0),  # in the lane: gap 30 - 3.8 - 2.0 = 24.2 m
        (20, 3.5, 0, 4.0, 1.8, 0, 0),  # next lane: 3.5 m > 1.05 + 0.9 from the path
        (50, 0, 0, 4.0, 1.8, 0, 0),  # behind the first one
        (-10, 0, 0, 4.0, 1.8, 0, 0),  # behind the ego
    )
    lead = find_lead(straight_ahead, cars, SHAPE)
    assert lead == Lead(pytest.approx(24.2), pytest.approx(8.0))  # found past the path's end
    assert find_lead(straight_ahead, obstacles((20, 1.96, 0, 4, 1.8, 0, 0)), SHAPE) is None
    assert find_lead(straight_ahead, obstacles((20, 1.94, 0, 4, 1.8, 0, 0)), SHAPE) is not None


def test_lead_on_a_curved_path_uses_the_distance_along_it():
    quarter = np.pi / 2 * 20  # 90 degrees of a 20 m radius: 31.4 m along the path
    angles = np.linspace(0, np.pi / 2, 50)
    arc = np.column_stack([20 * np.sin(angles), 20 * (1 - np.cos(angles))])
    car = obstacles((20, 20, np.pi / 2, 4.0, 1.8, 0, 5))  # at the end of the arc, driving +y
    lead = find_lead(arc, car, SHAPE)
    assert lead.gap_m == pytest.approx(quarter - 3.8 - 2.0, abs=0.05)
    assert lead.speed_mps == pytest.approx(5.0, abs=0.01)


def test_no_obstacles_or_an_invalid_time():
    assert first_conflict_s(path(straight(10.0)), obstacles(), SHAPE) == math.inf
    check = check_collision('collision.swept', math.nan, 1.5)
    assert check.verdict == Verdict.EMERGENCY and check.reason.startswith('cannot evaluate')


def obstacle_message(
    id_: int, x: float, y: float, quaternion: tuple[float, float, float, float], size, velocity
) -> Obstacle:
    item = Obstacle(id=id_)
    item.pose.position.x, item.pose.position.y = x, y
    q = item.pose.orientation
    q.x, q.y, q.z, q.w = quaternion
    item.dimensions.x, item.dimensions.y, item.dimensions.z = (*size, 1.5)
    item.velocity.x, item.velocity.y = velocity
    return item


def one_at_a_time(message: ObstacleArray) -> np.ndarray:
    """Convert as before vectorising (issue 21): rows of (x, y, yaw, length, width, vx, vy)."""
    rows = []
    for item in message.obstacles:
        p, d, v = item.pose.position, item.dimensions, item.velocity
        rows.append((p.x, p.y, yaw_of(item.pose.orientation), d.x, d.y, v.x, v.y))
    return np.array(rows, dtype=float).reshape(-1, 7)


MIXED = [  # headings every way, non-unit and tilted quaternions, parked and moving, any size
    obstacle_message(1, 30.0, 0.0, (0.0, 0.0, 0.0, 1.0), (4.5, 1.8), (0.0, 0.0)),
    obstacle_message(
        2, -12.5, 3.5, (0.0, 0.0, math.sin(1.2), math.cos(1.2)), (0.6, 0.6), (1.4, 0.3)
    ),
    obstacle_message(3, 7.25, -3.5, (0.0, 0.0, 1.0, 0.0), (12.0, 2.55), (-22.0, 0.0)),
    obstacle_message(4, 1e3, -1e3, (0.0, 0.0, -0.6, 1.6), (4.0, 1.7), (0.0, -9.5)),
    obstacle_message(5, 0.1, 0.2, (0.1, -0.05, 0.3, 0.9), (1.9, 0.7), (3.0, 4.0)),
    obstacle_message(6, 55.0, 1.0, (0.0, 0.0, -0.999, 0.0447), (0.3, 0.3), (0.0, 0.0)),
]


def test_an_obstacle_array_converts_exactly_as_one_obstacle_at_a_time():
    message = ObstacleArray(obstacles=MIXED)
    converted = Obstacles.from_message(message)
    expected = one_at_a_time(message)
    assert len(converted) == len(MIXED)
    np.testing.assert_array_equal(converted.centres, expected[:, 0:2])
    np.testing.assert_array_equal(converted.yaws, expected[:, 2])
    np.testing.assert_array_equal(converted.sizes, expected[:, 3:5])
    np.testing.assert_array_equal(converted.velocities, expected[:, 5:7])
    empty = Obstacles.from_message(ObstacleArray())
    assert empty.centres.shape == (0, 2) and empty.yaws.shape == (0,)


def test_the_first_unreadable_obstacle_is_named():
    flat = obstacle_message(8, 5.0, 0.0, (0.0, 0.0, 0.0, 1.0), (4.5, 0.0), (0.0, 0.0))
    tilted_nan = obstacle_message(9, 5.0, 0.0, (math.nan, 0.0, 0.0, 1.0), (4.5, 1.8), (0.0, 0.0))
    fast = obstacle_message(10, 5.0, 0.0, (0.0, 0.0, 0.0, 1.0), (4.5, 1.8), (math.inf, 0.0))
    cases = [
        ([*MIXED, flat, tilted_nan], 'obstacle 8 has a non-positive size 4.5 x 0.0 m'),
        ([*MIXED, tilted_nan, flat], 'obstacle 9 has non-finite pose, size or velocity'),
        ([fast, *MIXED], 'obstacle 10 has non-finite pose, size or velocity'),
    ]
    for items, reason in cases:
        with pytest.raises(ValueError, match=f'^{re.escape(reason)}$'):
            Obstacles.from_message(ObstacleArray(obstacles=items))
