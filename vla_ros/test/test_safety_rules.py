"""Every safety rule at its boundaries, against values computed by hand."""

import dataclasses
import math

import numpy as np
import pytest
from vla_msgs.msg import SafetyCheck

from repo_paths import REPO_ROOT
from vla_planning.collision import VehicleShape
from vla_planning.safety_rules import (
    RssParameters,
    SafetyLimits,
    Verdict,
    check_age,
    check_cameras,
    check_confidence,
    check_continuity,
    check_finite,
    check_range,
    check_rss,
    check_spacing,
    check_time_to_collision,
    check_times,
    rss_safe_distance,
    rss_safe_speed,
    time_to_collision,
)
from vla_planning.safety_states import StateMachineConfig
from vla_planning.timed_path import from_plan, jerks, path_turns

LIMITS = SafetyLimits()
RSS = RssParameters()


def test_verdicts_are_the_message_constants():
    assert [v.value for v in Verdict] == [
        SafetyCheck.VERDICT_PASS,
        SafetyCheck.VERDICT_DEGRADE,
        SafetyCheck.VERDICT_OVERRIDE,
        SafetyCheck.VERDICT_MINIMAL_RISK,
        SafetyCheck.VERDICT_EMERGENCY,
    ]


@pytest.mark.parametrize(
    ('age', 'verdict', 'reason'),
    [
        (0.5, Verdict.PASS, '0.500 s old'),
        (0.5001, Verdict.OVERRIDE, '0.500 s old > 0.5 s'),
        (math.inf, Verdict.OVERRIDE, 'never received > 0.5 s'),
        (math.nan, Verdict.OVERRIDE, 'cannot evaluate: age is NaN'),
        (-0.5, Verdict.PASS, '-0.500 s old'),
        (-0.51, Verdict.OVERRIDE, 'stamp 0.510 s in the future'),
    ],
)
def test_freshness_boundary(age, verdict, reason):
    check = check_age('freshness.plan', age, LIMITS.plan_age_s, Verdict.OVERRIDE)
    assert (check.verdict, check.reason) == (verdict, reason)


def test_non_finite_values_reject_the_plan():
    check = check_finite(
        'sanity.finite', {'x': np.array([1.0, np.nan]), 'speed': np.array([np.inf, -np.inf])}
    )
    assert check.verdict == Verdict.OVERRIDE and check.reason == '1 non-finite values in x'
    assert check_finite('sanity.finite', {'x': np.zeros(3)}).verdict == Verdict.PASS


@pytest.mark.parametrize(
    ('times', 'verdict', 'reason'),
    [
        ([], Verdict.OVERRIDE, 'the plan has no points'),
        ([0.5, 0.5, 2.0], Verdict.OVERRIDE, 'time_from_start does not increase at point 1'),
        ([0.5, 1.0, 0.9, 2.0], Verdict.OVERRIDE, 'time_from_start does not increase at point 2'),
        ([0.0, 1.0, 2.0], Verdict.PASS, 'horizon 2.00 s'),
        ([-0.1, 1.0, 2.0], Verdict.OVERRIDE, 'time_from_start starts negative (-0.1 s)'),
        ([0.5, 1.0, 1.99], Verdict.OVERRIDE, 'horizon 1.99 s < 2.0 s'),
        ([0.5, 1.0, 2.0], Verdict.PASS, 'horizon 2.00 s'),
    ],
)
def test_time_from_start_and_horizon(times, verdict, reason):
    check = check_times('sanity.times', np.array(times), LIMITS.min_horizon_s)
    assert (check.verdict, check.reason) == (verdict, reason)


def test_point_spacing_counts_the_first_point_from_the_vehicle():
    assert check_spacing('sanity.spacing', np.array([[100.0, 0.0]]), 100.0).verdict == Verdict.PASS
    far = check_spacing('sanity.spacing', np.array([[60.0, 80.01]]), 100.0)  # 100.008 m
    assert far.verdict == Verdict.OVERRIDE and far.value == pytest.approx(100.008, abs=1e-3)
    assert check_spacing(
        'sanity.spacing', np.array([[3.0, 4.0], [3.0, 104.1]]), 100.0
    ).value == pytest.approx(100.1)


@pytest.mark.parametrize(
    ('accelerations', 'verdict', 'value'),
    [
        ([2.0, -3.5], Verdict.PASS, 2.0),
        ([2.01, 0.0], Verdict.DEGRADE, 2.01),
        ([0.0, -3.51], Verdict.DEGRADE, -3.51),
        ([2.1, -4.0], Verdict.DEGRADE, -4.0),
    ],
)
def test_longitudinal_acceleration_within_iso_15622(accelerations, verdict, value):
    check = check_range(
        'kinematics.acceleration',
        np.array(accelerations),
        LIMITS.min_acceleration_mps2,
        LIMITS.max_acceleration_mps2,
        'm/s^2',
        Verdict.DEGRADE,
    )
    assert (check.verdict, check.value) == (verdict, pytest.approx(value))


def test_lateral_acceleration_is_speed_times_the_course_rate():
    # A 133.3 m radius at 20 m/s turns at 0.15 rad/s: 3.0 m/s^2, the ISO 11270 limit. Chords
    # 0.5 s apart turn by 0.075 rad each (the first by half that, from the start heading).
    radius, step = 20.0 / 0.15, 0.075
    angles = np.arange(0, 6) * step
    poses = np.column_stack([radius * np.sin(angles), radius * (1 - np.cos(angles)), angles])
    kinematics = path_turns(np.arange(6) * 0.5, poses)
    lateral = kinematics.speeds_mps * kinematics.yaw_rates_rps
    assert kinematics.turn_angles_rad[1:] == pytest.approx(step)
    assert lateral[1:] == pytest.approx(3.0, abs=2e-3)  # chord speed 2R sin(step/2)/dt
    assert kinematics.curvatures_1pm[1:] == pytest.approx(1 / radius, rel=1e-3)
    limit = LIMITS.max_lateral_acceleration_mps2
    at_limit, over = np.array([3.0]), np.array([-3.02])
    assert (
        check_range('kinematics.lateral', at_limit, -limit, limit, 'm/s^2', Verdict.OVERRIDE)
    ).verdict == Verdict.PASS
    check = check_range('kinematics.lateral', over, -limit, limit, 'm/s^2', Verdict.OVERRIDE)
    assert check.verdict == Verdict.OVERRIDE and check.value == pytest.approx(-3.02)


def test_longitudinal_jerk_against_nuplan_comfort():
    # Point speeds 10, 10, 10, 11.0325 m/s 0.5 s apart: accelerations 0, 0, 2.065 m/s^2, so a
    # jerk of 4.13 m/s^3, the nuPlan limit; a little more speed goes over it.
    def jerk(last_speed: float) -> np.ndarray:
        poses = np.column_stack([[5.0, 10.0, 10.0 + 0.5 * last_speed], np.zeros(3), np.zeros(3)])
        return jerks(from_plan(np.array([0.5, 1.0, 1.5]), poses))

    assert jerk(11.0325) == pytest.approx([0.0, 4.13])
    limit = LIMITS.max_longitudinal_jerk_mps3
    assert (
        check_range('kinematics.jerk', jerk(11.05), -limit, limit, 'm/s^3', Verdict.DEGRADE)
    ).verdict == Verdict.DEGRADE


@pytest.mark.parametrize(
    ('confidence', 'verdict'),
    [
        (0.2, Verdict.PASS),
        (0.1999, Verdict.OVERRIDE),
        (1.5, Verdict.OVERRIDE),
        (math.nan, Verdict.OVERRIDE),
    ],
)
def test_confidence_floor(confidence, verdict):
    assert (
        check_confidence('model.confidence', confidence, LIMITS.min_confidence).verdict == verdict
    )


def test_rss_distance_at_50_kmh_behind_a_car_at_the_same_speed():
    v = 50 / 3.6
    # v*rho + a*rho^2/2 + (v + rho*a)^2/(2*4) - v^2/(2*8), by hand: 13.889 + 1.75 + 37.797 - 12.056
    assert rss_safe_distance(v, v, RSS) == pytest.approx(41.38, abs=0.01)
    assert rss_safe_distance(0.0, 40.0, RSS) == 0.0  # a fast lead: no distance needed
    assert math.isnan(rss_safe_distance(-1.0, 10.0, RSS))  # invalid input cannot be evaluated


@pytest.mark.parametrize(
    ('gap', 'verdict'),
    [(41.0, Verdict.DEGRADE), (41.5, Verdict.PASS), (math.nan, Verdict.DEGRADE)],
)
def test_rss_check_at_its_boundary(gap, verdict):
    assert check_rss('collision.rss', gap, 50 / 3.6, 50 / 3.6, RSS).verdict == verdict


def test_rss_check_refuses_invalid_speeds():
    check = check_rss('collision.rss', 50.0, -2.0, 10.0, RSS)
    assert check.verdict == Verdict.DEGRADE and check.reason.startswith('cannot evaluate')


def test_rss_safe_speed_inverts_the_distance():
    v = 50 / 3.6
    assert rss_safe_speed(rss_safe_distance(v, v, RSS), v, RSS) == pytest.approx(v)
    assert rss_safe_speed(rss_safe_distance(20.0, 5.0, RSS), 5.0, RSS) == pytest.approx(20.0)
    # A gap shorter than the distance needed even at rest (1.75 m at a standing lead): stop.
    assert rss_safe_speed(1.0, 0.0, RSS) == 0.0


def test_time_to_collision_and_its_boundary():
    assert time_to_collision(30.0, 10.0) == pytest.approx(3.0)
    assert time_to_collision(30.0, 0.0) == math.inf  # not closing
    assert time_to_collision(-1.0, 5.0) == 0.0  # already overlapping
    minimum = LIMITS.min_time_to_collision_s
    assert check_time_to_collision('collision.ttc', 1.5, minimum).verdict == Verdict.PASS
    assert check_time_to_collision('collision.ttc', 1.49, minimum).verdict == Verdict.EMERGENCY
    assert check_time_to_collision('collision.ttc', math.nan, minimum).verdict == Verdict.EMERGENCY


def test_every_limit_is_documented_with_a_source():
    documented = (REPO_ROOT / 'docs' / 'SAFETY.md').read_text(encoding='utf-8')
    classes = (SafetyLimits, RssParameters, VehicleShape, StateMachineConfig)
    names = [field.name for cls in classes for field in dataclasses.fields(cls)]
    assert [name for name in names if f'`{name}`' not in documented] == []


@pytest.mark.parametrize(
    ('ego', 'ego_speed', 'verdict', 'reason'),
    [
        ([1.0, 0.0, 0.0], 10.0, Verdict.PASS, 'plan starts 1.00 m from the vehicle'),
        ([0.6, 0.81, 0.0], 10.0, Verdict.OVERRIDE, 'plan position is 1.01 m from the vehicle'),
        ([0.0, 0.0, 1.6], 10.0, Verdict.OVERRIDE, 'plan heading is 1.60 rad from the vehicle'),
        ([0.0, 0.0, 2 * np.pi], 10.0, Verdict.PASS, 'plan starts 0.00 m from the vehicle'),
        ([0.0, 0.0, 0.0], 13.01, Verdict.OVERRIDE, 'plan speed is 3.01 m/s from the vehicle'),
        ([np.nan, 0.0, 0.0], 10.0, Verdict.OVERRIDE, 'cannot evaluate: non-finite pose or speed'),
    ],
)
def test_continuity_against_autoware_validator_deviations(ego, ego_speed, verdict, reason):
    check = check_continuity(
        'continuity.start', np.zeros(3), 10.0, np.array(ego), ego_speed, LIMITS
    )
    assert (check.verdict, check.reason.split(' (limit')[0]) == (verdict, reason)


@pytest.mark.parametrize(
    ('healths', 'verdict'),
    [
        ([0] * 6, Verdict.PASS),
        ([0, 1, 0, 0, 0, 0], Verdict.DEGRADE),
        ([2, 2, 0, 0, 0, 0], Verdict.DEGRADE),
        ([2, 2, 3, 0, 0, 0], Verdict.MINIMAL_RISK),
        ([], Verdict.MINIMAL_RISK),
    ],
)
def test_camera_health(healths, verdict):
    assert (
        check_cameras('freshness.cameras', healths, LIMITS.max_cameras_not_ok).verdict == verdict
    )
