"""The planner's acceleration limits: bounded, never faster, on the same path, unchanged within."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from vla_planning.inference_core import path_kinematics
from vla_planning.plan_speeds import PlanAccelerationLimits, within_acceleration_limits
from vla_planning.timed_path import from_plan, project_onto_polyline

STEP_S = 0.5
LIMITS = PlanAccelerationLimits()


def plan_from_speeds(speeds: list[float], curvature: float = 0.0) -> np.ndarray:
    """Points STEP_S apart along an arc of constant curvature (1/m), at these segment speeds."""
    distances = np.cumsum(np.asarray(speeds) * STEP_S)
    if abs(curvature) < 1e-9:
        return np.column_stack([distances, 0 * distances, 0 * distances]).astype(np.float32)
    heading = curvature * distances
    x, y = np.sin(heading) / curvature, (1 - np.cos(heading)) / curvature
    return np.column_stack([x, y, heading]).astype(np.float32)


def monitor_accelerations(points: np.ndarray) -> np.ndarray:
    """Return the accelerations the safety monitor derives from a plan (timed_path.from_plan)."""
    return from_plan(np.arange(1, len(points) + 1) * STEP_S, points).accelerations_mps2


def test_a_restart_over_the_limit_is_slowed_to_it_and_nothing_else_changes():
    """The traced roundabout restart (docs/TRAINING.md): 2.2 m/s² at its fourth segment."""
    points = plan_from_speeds([0.2, 0.7, 1.3, 2.1, 3.2, 4.1])
    assert monitor_accelerations(points).max() > 2.0
    limited = within_acceleration_limits(points, STEP_S, LIMITS)
    speeds = path_kinematics(limited, STEP_S)[0]
    np.testing.assert_allclose(speeds, [0.2, 0.7, 1.3, 2.1, 3.0, 3.9], atol=1e-5)
    assert monitor_accelerations(limited).max() <= LIMITS.max_acceleration_mps2 + 1e-4


def test_a_stop_too_sharp_starts_braking_earlier_and_stops_no_further():
    points = plan_from_speeds([8.0, 8.0, 7.5, 4.0, 0.5, 0.0])
    limited = within_acceleration_limits(points, STEP_S, LIMITS)
    speeds = path_kinematics(limited, STEP_S)[0]
    assert monitor_accelerations(limited).min() >= -LIMITS.max_deceleration_mps2 - 1e-4
    assert speeds[0] < 8.0  # braking begins at once
    assert limited[-1, 0] <= points[-1, 0] + 1e-4


def test_a_plan_within_the_limits_is_returned_unchanged():
    points = plan_from_speeds([10.0, 10.5, 11.0, 11.2, 11.0, 10.0], curvature=0.02)
    assert within_acceleration_limits(points, STEP_S, LIMITS) is points


@settings(max_examples=300, deadline=None)
@given(
    speeds=st.lists(st.floats(0.0, 30.0), min_size=6, max_size=6),
    curvature=st.floats(-0.05, 0.05),
)
def test_any_plan_comes_out_within_the_limits_slower_and_on_its_own_path(speeds, curvature):
    # Turning no harder than the monitor's lateral-acceleration rule lets a plan (3 m/s²).
    bound = 3.0 / max(max(speeds), 1.0) ** 2
    curvature = float(np.clip(curvature, -bound, bound))
    points = plan_from_speeds(speeds, curvature)
    limited = within_acceleration_limits(points, STEP_S, LIMITS)
    accelerations = monitor_accelerations(limited)
    # Points are placed by distance along the path and read back as chords: on a curve a few
    # hundredths of a m/s² apart (0.035 at worst in 20 000 random plans; the monitor's own
    # limits are 0.2 and 0.35 m/s² higher).
    assert accelerations.max() <= LIMITS.max_acceleration_mps2 + 0.05
    assert accelerations.min() >= -LIMITS.max_deceleration_mps2 - 0.05
    assert np.all(path_kinematics(limited, STEP_S)[0] <= np.asarray(speeds) + 1e-3)
    polyline = np.vstack([np.zeros((1, 2)), points[:, :2].astype(np.float64)])
    projection = project_onto_polyline(polyline, limited[:, :2].astype(np.float64))
    if projection is not None:  # a plan that never moves has no path to be on
        assert projection.lateral_m.max() < 1e-3
