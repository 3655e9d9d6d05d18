"""The safety monitor's rules: each a small pure function that returns a verdict with a reason.

Every limit is a named value with its unit and the published source it comes from (also listed
in docs/SAFETY.md). A rule that cannot evaluate its input (NaN, a wrong sign, nothing received)
does not pass: "cannot evaluate" is treated as unsafe, as the RSS library does.
"""

import math
from dataclasses import dataclass
from enum import IntEnum

import numpy as np


class Verdict(IntEnum):
    """What a rule asks for; the values are vla_msgs/SafetyCheck.VERDICT_*."""

    PASS = 0
    DEGRADE = 1  # clamp the speed profile, keep the geometry
    OVERRIDE = 2  # reject the plan: hold the last valid one
    MINIMAL_RISK = 3  # comfortable stop
    EMERGENCY = 4  # emergency stop


@dataclass(frozen=True)
class Check:
    """One rule's outcome: its name, verdict, a reason with numbers, the value and the limit."""

    rule: str
    verdict: Verdict
    reason: str
    value: float
    limit: float


@dataclass(frozen=True)
class SafetyLimits:
    """Thresholds of the rules. Sources in brackets; docs/SAFETY.md lists them all."""

    plan_age_s: float = 0.5  # older plan: hold the last valid one [openpilot: 10 periods at 20 Hz]
    plan_lost_s: float = 1.0  # older plan: stop [Autoware planning validator: message age 1.0 s]
    odometry_age_s: float = 0.5  # [Autoware MRM handler: availability older than 0.5 s]
    sensor_frame_age_s: float = 0.5  # the same bound for the cameras' frames
    obstacles_age_s: float = 0.5  # the same bound for the independent obstacle source
    min_horizon_s: float = 2.0  # shorter plans cannot be followed safely through one outage
    max_point_spacing_m: float = 100.0  # [Autoware planning validator: point interval 100 m]
    max_acceleration_mps2: float = 2.0  # [ISO 15622 ACC: +2.0 m/s^2]
    min_acceleration_mps2: float = -3.5  # [ISO 15622 ACC: -3.5 m/s^2]
    max_longitudinal_jerk_mps3: float = 4.13  # [nuPlan comfort: longitudinal jerk 4.13 m/s^3]
    max_lateral_acceleration_mps2: float = 3.0  # [ISO 11270 LKA, openpilot: 3.0 m/s^2]
    max_curvature_1pm: float = 1.0  # [Autoware planning validator: curvature 1.0 1/m]
    max_relative_angle_rad: float = 2.0  # turn between segments [Autoware validator: 2.0 rad]
    max_steering_rate_rps: float = 10.0  # [Autoware planning validator: steering rate 10 rad/s]
    speed_limit_mps: float = 36.1  # 130 km/h, the highest motorway limit the simulator drives
    min_confidence: float = 0.2  # below: the model is unsure among its candidates (project's)
    min_time_to_collision_s: float = 1.5  # [Autoware AEB: 1.5 s ego-path horizon]
    max_position_deviation_m: float = 1.0  # [Autoware validator: distance deviation 1.0 m]
    max_yaw_deviation_rad: float = 1.5708  # [Autoware validator: yaw deviation 1.5708 rad]
    max_speed_deviation_mps: float = 3.0  # plan speed vs measured speed now (project's)
    max_cameras_not_ok: int = 2  # more cameras missing or stale: stop (project's, 6-camera rig)


@dataclass(frozen=True)
class RssParameters:
    """Responsibility-Sensitive Safety longitudinal parameters.

    [Shalev-Shwartz et al. 2017; ad-rss-lib defaults, which its authors call "only suggestions"]
    """

    response_time_s: float = 1.0  # rho, the ego vehicle's response time
    max_acceleration_mps2: float = 3.5  # a_max,accel during the response time
    min_braking_mps2: float = 4.0  # a_min,brake the ego vehicle is sure to achieve
    max_braking_mps2: float = 8.0  # a_max,brake the lead vehicle may apply


def cannot_evaluate(rule: str, what: str, verdict: Verdict) -> Check:
    """Return the outcome of a rule whose input is missing or invalid: it does not pass."""
    return Check(rule, verdict, f'cannot evaluate: {what}', math.nan, math.nan)


def check_age(rule: str, age_s: float, limit_s: float, verdict: Verdict) -> Check:
    """Freshness: an input older than `limit_s` (or never received: +inf) gets `verdict`.

    A stamp more than `limit_s` in the future is refused too: the clocks disagree.
    """
    if math.isnan(age_s):
        return cannot_evaluate(rule, 'age is NaN', verdict)
    if age_s < -limit_s:
        return Check(rule, verdict, f'stamp {-age_s:.3f} s in the future', age_s, limit_s)
    if age_s > limit_s:
        received = 'never received' if math.isinf(age_s) else f'{age_s:.3f} s old'
        return Check(rule, verdict, f'{received} > {limit_s} s', age_s, limit_s)
    return Check(rule, Verdict.PASS, f'{age_s:.3f} s old', age_s, limit_s)


def check_finite(rule: str, arrays: dict[str, np.ndarray]) -> Check:
    """Sanity: every number of the plan is finite (a NaN or Inf rejects the plan)."""
    for name, values in arrays.items():
        bad = int(np.size(values) - np.count_nonzero(np.isfinite(values)))
        if bad:
            return Check(rule, Verdict.OVERRIDE, f'{bad} non-finite values in {name}', bad, 0)
    return Check(rule, Verdict.PASS, 'all values finite', 0, 0)


def check_times(rule: str, times_s: np.ndarray, min_horizon_s: float) -> Check:
    """Sanity: time_from_start >= 0, strictly increasing, reaching `min_horizon_s`.

    A first point at 0 s is allowed: Autoware trajectories start at the ego position.
    """
    if times_s.size == 0:
        return Check(rule, Verdict.OVERRIDE, 'the plan has no points', 0, min_horizon_s)
    if times_s[0] < 0:
        return Check(
            rule,
            Verdict.OVERRIDE,
            f'time_from_start starts negative ({times_s[0]} s)',
            float(times_s[0]),
            0,
        )
    steps = times_s[1:] - times_s[:-1]
    if np.any(steps <= 0):
        index = int(np.argmax(steps <= 0)) + 1
        return Check(
            rule, Verdict.OVERRIDE, f'time_from_start does not increase at point {index}', index, 0
        )
    horizon = float(times_s[-1])
    if horizon < min_horizon_s:
        return Check(
            rule,
            Verdict.OVERRIDE,
            f'horizon {horizon:.2f} s < {min_horizon_s} s',
            horizon,
            min_horizon_s,
        )
    return Check(rule, Verdict.PASS, f'horizon {horizon:.2f} s', horizon, min_horizon_s)


def check_spacing(rule: str, xy: np.ndarray, max_spacing_m: float) -> Check:
    """Sanity: consecutive points (and the first from the origin) at most `max_spacing_m` apart."""
    points = np.vstack([np.zeros((1, 2)), xy])
    with np.errstate(over='ignore', invalid='ignore'):  # huge coordinates: an infinite gap
        gaps = np.hypot(*(points[1:] - points[:-1]).T)
    worst = float(gaps.max(initial=0.0))
    verdict = Verdict.OVERRIDE if worst > max_spacing_m else Verdict.PASS
    return Check(
        rule,
        verdict,
        f'largest point spacing {worst:.2f} m (limit {max_spacing_m} m)',
        worst,
        max_spacing_m,
    )


def check_range(
    rule: str, values: np.ndarray, low: float, high: float, unit: str, verdict: Verdict
) -> Check:
    """Kinematics: every value within [low, high]; the worst excursion is reported."""
    if values.size == 0:
        return Check(rule, Verdict.PASS, 'no values', 0, high)
    below, above = low - float(values.min()), float(values.max()) - high
    if max(below, above) <= 0:
        return Check(
            rule, Verdict.PASS, f'within [{low}, {high}] {unit}', float(values.max()), high
        )
    value, limit = (float(values.min()), low) if below >= above else (float(values.max()), high)
    return Check(rule, verdict, f'{value:.3f} {unit} outside [{low}, {high}] {unit}', value, limit)


def check_confidence(rule: str, confidence: float, floor: float) -> Check:
    """Model confidence (probability of the chosen candidate) at least `floor`."""
    if not 0.0 <= confidence <= 1.0:
        return cannot_evaluate(
            rule, f'confidence {confidence} is not a probability', Verdict.OVERRIDE
        )
    verdict = Verdict.OVERRIDE if confidence < floor else Verdict.PASS
    return Check(rule, verdict, f'confidence {confidence:.3f} (floor {floor})', confidence, floor)


def rss_safe_distance(ego_speed_mps: float, lead_speed_mps: float, rss: RssParameters) -> float:
    """Minimum safe longitudinal gap to a lead vehicle in the same direction, metres (RSS).

    d = [v_r*rho + a_acc*rho^2/2 + (v_r + rho*a_acc)^2 / (2*a_brake_min)
         - v_f^2 / (2*a_brake_max)]+. NaN for invalid input (negative speed or parameters).
    """
    rho, accel = rss.response_time_s, rss.max_acceleration_mps2
    values = (
        ego_speed_mps,
        lead_speed_mps,
        rho,
        accel,
        rss.min_braking_mps2,
        rss.max_braking_mps2,
    )
    if (
        not all(math.isfinite(v) and v >= 0 for v in values)
        or rss.min_braking_mps2 == 0
        or rss.max_braking_mps2 == 0
    ):
        return math.nan
    distance = (
        ego_speed_mps * rho
        + 0.5 * accel * rho**2
        + (ego_speed_mps + rho * accel) ** 2 / (2 * rss.min_braking_mps2)
        - lead_speed_mps**2 / (2 * rss.max_braking_mps2)
    )
    return max(distance, 0.0)


def check_rss(
    rule: str, gap_m: float, ego_speed_mps: float, lead_speed_mps: float, rss: RssParameters
) -> Check:
    """Require the gap to the lead vehicle to be at least the RSS safe distance.

    Below it, RSS's proper response is to brake until the gap is safe again: DEGRADE, whose
    speed clamp includes rss_safe_speed.
    """
    safe = rss_safe_distance(ego_speed_mps, lead_speed_mps, rss)
    if math.isnan(safe) or not math.isfinite(gap_m):
        return cannot_evaluate(
            rule,
            f'gap {gap_m} m, speeds {ego_speed_mps}/{lead_speed_mps} m/s',
            Verdict.DEGRADE,
        )
    verdict = Verdict.DEGRADE if gap_m < safe else Verdict.PASS
    return Check(rule, verdict, f'gap {gap_m:.1f} m, RSS safe distance {safe:.1f} m', gap_m, safe)


def rss_safe_speed(gap_m: float, lead_speed_mps: float, rss: RssParameters) -> float:
    """Highest ego speed whose RSS safe distance to the lead is at most `gap_m`, m/s.

    The inverse of rss_safe_distance: with u = v + rho*a_acc the distance is
    u^2/(2*a_brake_min) + rho*u - a_acc*rho^2/2 - v_f^2/(2*a_brake_max), a quadratic in u.
    """
    rho, accel, brake = rss.response_time_s, rss.max_acceleration_mps2, rss.min_braking_mps2
    constant = (
        gap_m + 0.5 * accel * rho**2 + max(lead_speed_mps, 0.0) ** 2 / (2 * rss.max_braking_mps2)
    )
    if constant <= 0:
        return 0.0
    u = brake * (-rho + math.sqrt(rho**2 + 2 * constant / brake))
    return max(u - rho * accel, 0.0)


def time_to_collision(gap_m: float, closing_speed_mps: float) -> float:
    """Seconds until the gap closes at constant speeds; +inf when it is not closing."""
    if closing_speed_mps <= 0:
        return math.inf
    return max(gap_m, 0.0) / closing_speed_mps


def check_time_to_collision(rule: str, ttc_s: float, minimum_s: float) -> Check:
    """Time to collision at least `minimum_s`; below it, an emergency stop."""
    if math.isnan(ttc_s):
        return cannot_evaluate(rule, 'time to collision is NaN', Verdict.EMERGENCY)
    verdict = Verdict.EMERGENCY if ttc_s < minimum_s else Verdict.PASS
    return Check(
        rule, verdict, f'time to collision {ttc_s:.2f} s (minimum {minimum_s} s)', ttc_s, minimum_s
    )


def check_continuity(
    rule: str,
    plan_pose: np.ndarray,
    plan_speed_mps: float,
    ego_pose: np.ndarray,
    ego_speed_mps: float,
    limits: SafetyLimits,
) -> Check:
    """Require the plan, evaluated now, to start where the vehicle is: position, heading, speed.

    Poses are (x, y, heading) in the plan's frame; a plan that starts elsewhere would make the
    controller jump.
    """
    values = np.concatenate([plan_pose, ego_pose, [plan_speed_mps, ego_speed_mps]])
    if not np.all(np.isfinite(values)):
        return cannot_evaluate(rule, 'non-finite pose or speed', Verdict.OVERRIDE)
    position = float(np.hypot(*(plan_pose[:2] - ego_pose[:2])))
    yaw = abs(math.remainder(float(plan_pose[2] - ego_pose[2]), 2 * math.pi))
    speed = abs(plan_speed_mps - ego_speed_mps)
    for value, limit, what, unit in (
        (position, limits.max_position_deviation_m, 'position', 'm'),
        (yaw, limits.max_yaw_deviation_rad, 'heading', 'rad'),
        (speed, limits.max_speed_deviation_mps, 'speed', 'm/s'),
    ):
        if value > limit:
            return Check(
                rule,
                Verdict.OVERRIDE,
                f'plan {what} is {value:.2f} {unit} from the vehicle (limit {limit} {unit})',
                value,
                limit,
            )
    return Check(
        rule,
        Verdict.PASS,
        f'plan starts {position:.2f} m from the vehicle',
        position,
        limits.max_position_deviation_m,
    )


def check_cameras(rule: str, healths: list[int], max_not_ok: int) -> Check:
    """Cameras of the last frame: any not OK slows down (DEGRADE); too many stop (MINIMAL_RISK).

    `healths` are vla_msgs/InputStatus.HEALTH_* values (0 = OK).
    """
    not_ok = sum(1 for health in healths if health != 0)
    if not healths:
        return cannot_evaluate(rule, 'no camera status received', Verdict.MINIMAL_RISK)
    if not_ok > max_not_ok:
        verdict = Verdict.MINIMAL_RISK
    elif not_ok:
        verdict = Verdict.DEGRADE
    else:
        verdict = Verdict.PASS
    return Check(
        rule,
        verdict,
        f'{not_ok} of {len(healths)} cameras not OK (stop above {max_not_ok})',
        not_ok,
        max_not_ok,
    )
