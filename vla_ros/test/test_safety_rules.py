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
    lateral_accelerations,
    longitudinal_jerks,
    plan_state_at,
    rss_safe_distance,
    time_to_collision,
)
from vla_planning.safety_states import StateMachineConfig

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


def test_lateral_acceleration_is_speed_times_yaw_rate():
    # 20 m/s at 0.15 rad/s: 3.0 m/s^2, exactly the ISO 11270 limit; 0.151 rad/s: 3.02 m/s^2.
    at_limit = lateral_accelerations(np.array([20.0]), np.array([0.15]))
    over = lateral_accelerations(np.array([20.0]), np.array([-0.151]))
    limit = LIMITS.max_lateral_acceleration_mps2
    assert (
        check_range(
            'kinematics.lateral', at_limit, -limit, limit, 'm/s^2', Verdict.OVERRIDE
        ).verdict
        == Verdict.PASS
    )
    check = check_range('kinematics.lateral', over, -limit, limit, 'm/s^2', Verdict.OVERRIDE)
    assert check.verdict == Verdict.OVERRIDE and check.value == pytest.approx(-3.02)


def test_longitudinal_jerk_against_nuplan_comfort():
    times = np.array([0.5, 1.0])
    assert longitudinal_jerks(np.array([0.0, 2.065]), times) == pytest.approx([4.13])
    jerk = longitudinal_jerks(np.array([0.0, 2.1]), times)
    limit = LIMITS.max_longitudinal_jerk_mps3
    assert (
        check_range('kinematics.jerk', jerk, -limit, limit, 'm/s^3', Verdict.DEGRADE).verdict
        == Verdict.DEGRADE
    )


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
    [(41.0, Verdict.MINIMAL_RISK), (41.5, Verdict.PASS), (math.nan, Verdict.MINIMAL_RISK)],
)
def test_rss_check_at_its_boundary(gap, verdict):
    assert check_rss('collision.rss', gap, 50 / 3.6, 50 / 3.6, RSS).verdict == verdict


def test_rss_check_refuses_invalid_speeds():
    check = check_rss('collision.rss', 50.0, -2.0, 10.0, RSS)
    assert check.verdict == Verdict.MINIMAL_RISK and check.reason.startswith('cannot evaluate')


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


def test_plan_state_is_interpolated_from_the_origin():
    times = np.array([0.5, 1.0])
    poses = np.array([[5.0, 0.0, 0.0], [10.0, 1.0, 0.2]])
    pose, speed = plan_state_at(times, poses, np.array([10.0, 12.0]), 0.75)
    assert pose == pytest.approx([7.5, 0.5, 0.1]) and speed == pytest.approx(11.0)
    assert plan_state_at(times, poses, np.array([10.0, 12.0]), 0.25)[0] == pytest.approx(
        [2.5, 0.0, 0.0]
    )  # between the vehicle (origin) and the first point


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
