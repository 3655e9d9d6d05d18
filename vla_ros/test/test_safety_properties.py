"""Whatever the plan, the monitor publishes a finite trajectory within the hard limits.

Hypothesis draws plans of any size and content (NaN, infinities, huge values, time going
backwards, empty) and obstacles anywhere, after a history with or without a valid plan.
"""

import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from test_safety_monitor import Drive, boxes
from vla_planning.safety_monitor import MonitorConfig, MonitorOutput, Origin, PlanInput

CONFIG = MonitorConfig()
LIMITS = CONFIG.limits
ANY_FLOAT = st.floats(allow_nan=True, allow_infinity=True, width=64)
PLAUSIBLE = st.floats(-200.0, 200.0)


def assert_within_hard_limits(output: MonitorOutput) -> None:
    path = output.trajectory
    values = (path.times_s, path.poses, path.speeds_mps, path.accelerations_mps2)
    assert all(np.all(np.isfinite(v)) for v in values), output
    assert len(path) >= 2 and path.times_s[0] == 0.0
    assert np.all(np.diff(path.times_s) > 0)
    assert np.all(path.speeds_mps >= 0.0)
    assert np.all(path.speeds_mps <= LIMITS.speed_limit_mps + 1e-9)
    assert np.all(path.accelerations_mps2 <= LIMITS.max_acceleration_mps2 + 1e-9)
    assert np.all(path.accelerations_mps2 >= -CONFIG.emergency_stop.deceleration_mps2 - 1e-9)
    if output.origin in (Origin.MODEL, Origin.MODEL_SPEED_CLAMPED, Origin.HELD_PLAN):
        assert np.all(path.accelerations_mps2 >= LIMITS.min_acceleration_mps2 - 1e-9)
    if output.origin in (Origin.COMFORTABLE_STOP, Origin.EMERGENCY_STOP):
        profile = (
            CONFIG.emergency_stop
            if output.origin == Origin.EMERGENCY_STOP
            else CONFIG.comfortable_stop
        )
        jerk = np.diff(path.accelerations_mps2) / np.diff(path.times_s)
        assert np.all(np.abs(jerk) <= profile.jerk_mps3 + 1e-6)
        assert path.speeds_mps[-1] == 0.0


@st.composite
def drivable_plans(draw: st.DrawFn, start_speed: float) -> tuple[np.ndarray, np.ndarray, float]:
    """Plans a car could follow, at speeds and turns that may break the comfort limits."""
    size = draw(st.integers(4, 40))
    speeds = draw(arrays(np.float64, size, elements=st.floats(0.0, 60.0)))
    speeds[0] = start_speed
    turns = draw(arrays(np.float64, size, elements=st.floats(-0.02, 0.02)))
    step = draw(st.sampled_from([0.1, 0.5]))
    headings = np.cumsum(turns)
    x = np.cumsum(speeds * step * np.cos(headings))
    y = np.cumsum(speeds * step * np.sin(headings))
    times = np.arange(1, size + 1) * step
    return times, np.column_stack([x, y, headings]), draw(st.floats(0.0, 1.0))


@st.composite
def plans(draw: st.DrawFn, start_speed: float) -> tuple[np.ndarray, np.ndarray, float]:
    if draw(st.booleans()):
        return draw(drivable_plans(start_speed))
    size = draw(st.integers(0, 50))
    elements = draw(st.sampled_from([ANY_FLOAT, PLAUSIBLE]))
    times = draw(arrays(np.float64, size, elements=elements))
    if draw(st.booleans()):
        times = np.sort(np.abs(times))  # often plausible, so later rules get exercised
    poses = draw(arrays(np.float64, (size, 3), elements=elements))
    return times, poses, draw(ANY_FLOAT)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.data(),
    warm_up=st.booleans(),
    speed=st.floats(0.0, 36.0),
    obstacle=st.tuples(*[st.floats(-60, 60)] * 2, st.floats(-20, 20), st.floats(-20, 20)),
)
def test_any_plan_gives_a_finite_trajectory_within_the_hard_limits(data, warm_up, speed, obstacle):
    drive = Drive(speed_mps=speed)
    x, y, vx, vy = obstacle
    drive.obstacles = boxes((x, y, 0.0, 4.5, 1.8, vx, vy))
    if warm_up:
        for output in drive.cycle(3):
            assert_within_hard_limits(output)
    drive.send_plans = False
    times, poses, confidence = data.draw(plans(speed))
    drive.monitor.on_plan(PlanInput(drive.t_ns, times, poses, confidence))
    for output in drive.cycle(3):
        assert_within_hard_limits(output)


def test_a_million_point_plan_is_judged_in_full():
    drive = Drive()
    drive.cycle(3)
    drive.send_plans = False
    times = np.arange(1, 1_000_001) * 1e-4
    poses = np.column_stack([20 * times, np.zeros_like(times), np.zeros_like(times)])
    drive.monitor.on_plan(PlanInput(drive.t_ns, times, poses, 0.9))
    output = drive.cycle()[0]
    assert_within_hard_limits(output)
    assert output.origin == Origin.MODEL  # 100 s at 20 m/s is a valid plan, only long


def test_time_going_backwards_in_a_plan_is_refused():
    drive = Drive()
    drive.cycle(3)
    drive.send_plans = False
    times = np.array([0.5, 1.0, 0.9, 2.0, 2.5, 3.0])
    poses = np.column_stack([20 * times, np.zeros(6), np.zeros(6)])
    drive.monitor.on_plan(PlanInput(drive.t_ns, times, poses, 0.9))
    output = drive.cycle()[0]
    assert_within_hard_limits(output)
    assert output.origin == Origin.HELD_PLAN
    check = next(c for c in output.checks if c.rule == 'sanity.times')
    assert check.reason == 'time_from_start does not increase at point 2'
    assert not math.isnan(check.value)
