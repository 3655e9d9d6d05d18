"""The last gate (command_gate): hard limits on every command, property-based over random input.

Also: the tracking controller passes every command through it (a 60 m/s trajectory is never
asked of the vehicle), and a stop brakes from its first command.
"""

import math
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vla_planning.command_gate import HARD_LIMITS, CommandGate, GateLimits
from vla_planning.tracking_controller import (
    Command,
    ControllerConfig,
    EgoPose,
    StampedPath,
    TrackingController,
)

LIMITS = HARD_LIMITS
ANY_FLOAT = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(-100.0, 100.0),
    st.floats(-1.0, 1.0),
)
COMMANDS = st.builds(
    Command,
    steering_tire_angle_rad=ANY_FLOAT,
    steering_rate_rps=ANY_FLOAT,
    velocity_mps=ANY_FLOAT,
    acceleration_mps2=ANY_FLOAT,
    jerk_mps3=ANY_FLOAT,
    cross_track_error_m=ANY_FLOAT,
    target_speed_mps=ANY_FLOAT,
    stopping=st.booleans(),
    reason=st.just('tracking'),
)


def floats_of(command: Command) -> list[float]:
    return [v for v in command.__dict__.values() if isinstance(v, float)]


@settings(max_examples=400, deadline=None)
@given(
    steps=st.lists(
        st.tuples(
            st.one_of(st.floats(-0.2, 0.5), st.just(1.0 / 30.0), st.just(math.nan)),
            COMMANDS,
            st.one_of(st.none(), st.floats(-5.0, 60.0)),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_every_gated_command_is_finite_and_within_the_hard_limits(steps):
    gate = CommandGate()
    now, previous = 100.0, None  # (time, steering, acceleration) of the last gated command
    for dt, command, ego_speed in steps:
        now = now + dt if math.isfinite(dt) else now
        at = now if math.isfinite(dt) else math.nan
        out = gate.apply(at, command, ego_speed)
        assert all(math.isfinite(v) for v in floats_of(out)), out
        assert 0.0 <= out.velocity_mps <= LIMITS.max_speed_mps
        assert (
            LIMITS.min_acceleration_mps2 <= out.acceleration_mps2 <= LIMITS.max_acceleration_mps2
        )
        assert abs(out.steering_tire_angle_rad) <= LIMITS.max_steering_tire_angle_rad
        if ego_speed is not None and ego_speed >= LIMITS.max_speed_mps:
            assert out.acceleration_mps2 <= 0.0
        if previous is not None and math.isfinite(at) and at >= previous[0]:
            elapsed = at - previous[0]
            slack = 1e-9 * (1.0 + abs(previous[2]) + abs(previous[1])) + 1e-12
            rise = (
                LIMITS.max_jerk_mps3
                if out.acceleration_mps2 > 0.0
                else LIMITS.max_brake_release_jerk_mps3
            )
            assert out.acceleration_mps2 - previous[2] <= rise * elapsed * (1 + 1e-9) + slack
            assert abs(out.steering_tire_angle_rad - previous[1]) <= (
                LIMITS.max_steering_rate_rps * elapsed * (1 + 1e-9) + slack
            )
        if math.isfinite(at):
            previous = (at, out.steering_tire_angle_rad, out.acceleration_mps2)
        elif previous is not None:
            previous = (previous[0], out.steering_tire_angle_rad, out.acceleration_mps2)


@settings(max_examples=200, deadline=None)
@given(
    steering=st.floats(-0.01, 0.01),
    velocity=st.floats(0.0, LIMITS.max_speed_mps),
    acceleration=st.floats(-0.05, 0.05),
    ego_speed=st.floats(0.0, 36.0),
)
def test_a_command_within_the_limits_passes_unchanged(steering, velocity, acceleration, ego_speed):
    gate = CommandGate()
    command = Command(steering, 0.0, velocity, acceleration, 0.0, 0.0, velocity, False, 'tracking')
    gate.apply(10.0, replace(command, acceleration_mps2=0.0, steering_tire_angle_rad=0.0), None)
    assert gate.apply(10.1, command, ego_speed) is command
    assert sum(gate.clamped.values()) == 0 and gate.last_clamp == 'none'


def test_each_clamp_is_counted_by_limit_and_named():
    gate = CommandGate()
    command = Command(0.0, 0.0, 60.0, 1.0, 0.0, 0.0, 60.0, False, 'tracking')
    out = gate.apply(0.0, command, 10.0)
    assert out.velocity_mps == LIMITS.max_speed_mps and gate.clamped['speed'] == 1
    assert 'velocity 60.00 m/s' in gate.last_clamp
    out = gate.apply(0.1, replace(command, velocity_mps=30.0, acceleration_mps2=2.0), 10.0)
    assert out.acceleration_mps2 == pytest.approx(1.0 + 0.1 * LIMITS.max_jerk_mps3)
    assert gate.clamped['jerk'] == 1
    out = gate.apply(0.2, replace(command, velocity_mps=30.0, acceleration_mps2=1.0), 40.0)
    assert out.acceleration_mps2 == 0.0 and gate.clamped['speed'] == 2
    out = gate.apply(0.3, replace(command, steering_tire_angle_rad=1.4), 10.0)
    assert out.steering_tire_angle_rad == pytest.approx(0.1 * LIMITS.max_steering_rate_rps)
    assert gate.clamped['steering_angle'] == gate.clamped['steering_rate'] == 1
    out = gate.apply(0.4, replace(command, acceleration_mps2=math.nan), 10.0)
    assert out.stopping and out.velocity_mps == 0.0 and gate.clamped['non_finite'] == 1


@pytest.mark.parametrize(
    'changes',
    [
        {'max_speed_mps': 40.0},
        {'max_acceleration_mps2': 3.0},
        {'min_acceleration_mps2': -8.0},
        {'min_acceleration_mps2': 0.5},
        {'max_steering_rate_rps': math.nan},
        {'max_jerk_mps3': 0.0},
    ],
)
def test_limits_may_be_lowered_never_raised(changes):
    with pytest.raises(ValueError, match='gate limit'):
        GateLimits(**changes)
    assert GateLimits(max_speed_mps=20.0).max_speed_mps == 20.0


def straight(now: float, speed: float, acceleration: float = 0.0, n: int = 30) -> StampedPath:
    times = np.arange(n) * 0.1
    return StampedPath(
        now,
        times,
        speed * times,
        np.zeros(n),
        np.zeros(n),
        np.full(n, speed),
        np.full(n, acceleration),
    )


def test_a_60_mps_trajectory_is_never_asked_of_the_vehicle():
    controller = TrackingController(ControllerConfig())
    for step in range(90):
        now = 50.0 + step / 30.0
        speed = 30.0 + step * 0.1  # the car speeds up past the limit anyway
        command = controller.step(now, EgoPose(0.0, 0.0, 0.0, speed, now), straight(now, 60.0))
        assert command.velocity_mps <= LIMITS.max_speed_mps
        if speed >= LIMITS.max_speed_mps:
            assert command.acceleration_mps2 <= 0.0
    assert controller.gate.clamped['speed'] > 0


def test_a_stop_brakes_from_its_first_command():
    config = ControllerConfig()
    controller = TrackingController(config)
    now = 20.0
    for step in range(60):  # accelerating towards a faster trajectory
        now = 20.0 + step / 30.0
        command = controller.step(now, EgoPose(0.0, 0.0, 0.0, 10.0, now), straight(now, 15.0))
    assert command.acceleration_mps2 > 1.5 and not command.stopping
    last_path = straight(now, 15.0)
    now += config.trajectory_timeout_s + 0.05  # the trajectory stops arriving
    first = controller.step(now, EgoPose(0.0, 0.0, 0.0, 10.0, now), last_path)
    assert first.stopping and 'old' in first.reason
    assert config.emergency_acceleration_mps2 <= first.acceleration_mps2 < 0.0
    accelerations = [first.acceleration_mps2]
    for step in range(1, 60):
        t = now + step / 30.0
        accelerations.append(
            controller.step(t, EgoPose(0.0, 0.0, 0.0, 10.0, t), last_path).acceleration_mps2
        )
    assert np.all(np.diff(accelerations) <= 0.0)
    assert accelerations[-1] == pytest.approx(config.stop_acceleration_mps2)
