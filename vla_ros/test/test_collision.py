"""The swept-footprint collision rule, against conflict times worked out by hand.

The default ego box (4.8 x 1.9 m, base_link 1.0 m ahead of the rear bumper, 0.1 m margin) spans
x in [-1.1, 3.9] and y in [-1.05, 1.05] around base_link.
"""

import math

import numpy as np
import pytest

from vla_planning.collision import (
    Obstacles,
    VehicleShape,
    box_corners,
    boxes_overlap,
    check_collision,
    first_conflict_s,
)
from vla_planning.safety_rules import Verdict

SHAPE = VehicleShape()
TIMES = np.arange(1, 7) * 0.5


def straight(speed_mps: float) -> np.ndarray:
    return np.stack([speed_mps * TIMES, 0 * TIMES, 0 * TIMES], -1)


def obstacles(*boxes: tuple[float, float, float, float, float, float, float]) -> Obstacles:
    """Boxes as (x, y, yaw, length, width, vx, vy)."""
    data = np.array(boxes, dtype=float).reshape(-1, 7)
    return Obstacles(data[:, 0:2], data[:, 2], data[:, 3:5], data[:, 5:7])


def test_stopped_car_ahead_is_hit_when_the_bumpers_meet():
    # Front bumper 10 t + 3.9 reaches the car's rear 20 - 2.25 = 17.75 at t = 1.385 s.
    conflict = first_conflict_s(
        TIMES, straight(10.0), obstacles((20, 0, 0, 4.5, 1.8, 0, 0)), SHAPE
    )
    assert conflict == pytest.approx(1.4)  # the first 0.1 s sample after 1.385 s
    assert check_collision('collision.swept', conflict, 1.5).verdict == Verdict.EMERGENCY


def test_cars_in_the_next_lane_and_ahead_at_the_same_speed_are_not_hit():
    others = obstacles((20, 3.5, 0, 4.5, 1.8, 0, 0), (20, 0, 0, 4.5, 1.8, 10, 0))
    conflict = first_conflict_s(TIMES, straight(10.0), others, SHAPE)
    assert conflict == math.inf
    assert check_collision('collision.swept', conflict, 1.5).verdict == Verdict.PASS


def test_crossing_pedestrian_is_hit_when_both_ranges_overlap():
    # Pedestrian 0.5 m box at (15, -5) walking +y at 2 m/s: in the ego's y range from 1.85 s;
    # the ego at 5 m/s covers x = 14.75 from 2.17 s: first overlap at the 2.2 s sample.
    walker = obstacles((15, -5, 0, 0.5, 0.5, 0, 2))
    conflict = first_conflict_s(TIMES, straight(5.0), walker, SHAPE)
    assert conflict == pytest.approx(2.2)
    assert check_collision('collision.swept', conflict, 1.5).verdict == Verdict.OVERRIDE
    # At 10 m/s the ego is past x = 15.25 at 1.64 s, before the walker arrives at 1.85 s.
    assert first_conflict_s(TIMES, straight(10.0), walker, SHAPE) == math.inf


def test_obstacle_between_two_plan_points_is_not_missed():
    # Plan points 12.5 m apart at 25 m/s; debris at x = 7.5 lies between the origin and the
    # first point. Front bumper 25 t + 3.9 reaches 7.25 at 0.134 s: the 0.2 s sample.
    debris = obstacles((7.5, 0, 0, 0.5, 0.5, 0, 0))
    assert first_conflict_s(TIMES, straight(25.0), debris, SHAPE) == pytest.approx(0.2)


def test_turning_plan_sweeps_its_heading():
    # A 90-degree left turn: the box points +y at the end, so it reaches an obstacle to the left.
    heading = np.linspace(np.pi / 12, np.pi / 2, 6)
    radius = 10.0
    poses = np.column_stack([radius * np.sin(heading), radius * (1 - np.cos(heading)), heading])
    left = obstacles((10, 13, 0, 2.0, 2.0, 0, 0))
    assert math.isfinite(first_conflict_s(TIMES, poses, left, SHAPE))
    assert first_conflict_s(TIMES, straight(5.0), left, SHAPE) == math.inf


def test_separating_axes_see_past_overlapping_bounding_boxes():
    square = box_corners(np.zeros((1, 2)), np.zeros(1), np.ones((1, 2)))
    diamond_at = [np.array([[2.3, 2.3]]), np.array([[1.6, 1.6]])]
    yaw = np.full(1, np.pi / 4)
    far = boxes_overlap(square, np.zeros(1), box_corners(diamond_at[0], yaw, np.ones((1, 2))), yaw)
    near = boxes_overlap(
        square, np.zeros(1), box_corners(diamond_at[1], yaw, np.ones((1, 2))), yaw
    )
    assert not far[0] and near[0]  # axis-aligned boxes would overlap in both cases


def test_no_obstacles_or_an_invalid_time():
    assert first_conflict_s(TIMES, straight(10.0), obstacles(), SHAPE) == math.inf
    check = check_collision('collision.swept', math.nan, 1.5)
    assert check.verdict == Verdict.EMERGENCY and check.reason.startswith('cannot evaluate')
