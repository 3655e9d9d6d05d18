"""Trajectory-tracking controller: pure pursuit for steering, feed-forward plus PI for speed.

For simulators and vehicles without a controller of their own, this turns the safety monitor's
trajectory into an autoware_control_msgs/Control-like command. It is a ROS-free core with a pure
step interface (the time is passed in), so trajectory_output_node, closed-loop simulation and
unit tests run the same code. Every limit is a named value with its unit and source (also in
docs/TRAJECTORY_OUTPUT.md). Whatever it is given, it returns finite values within those limits;
when it cannot track (no, empty, stale or invalid trajectory or odometry) it commands a stop.
"""

import math
from dataclasses import astuple, dataclass

import numpy as np

from vla_planning.command_gate import HARD_LIMITS, CommandGate, GateLimits


@dataclass(frozen=True)
class ControllerConfig:
    """Vehicle geometry, gains and actuation limits. Sources in brackets."""

    wheelbase_m: float = 2.7  # a mid-size car [Autoware sample vehicle: 2.79 m]
    # Pure-pursuit lookahead = lookahead_time_s * |v| + min_lookahead_m, clamped to the maximum
    # [the form of Autoware's simple_pure_pursuit; Autoware pure_pursuit minimum 4.35 m].
    lookahead_time_s: float = 0.8
    min_lookahead_m: float = 4.0
    max_lookahead_m: float = 30.0  # 0.8 s of lookahead up to 32 m/s (project's)
    max_steering_tire_angle_rad: float = 0.6  # below [Autoware sample vehicle: 0.70 rad]
    # Half of [Autoware vehicle_cmd_gate steer_rate_lim: 1.0 rad/s, 0.8 at 30 m/s], so that the
    # gate never clips this controller's output.
    max_steering_rate_rps: float = 0.5
    speed_kp: float = 1.0  # 1/s [Autoware PID longitudinal controller kp]
    speed_ki: float = 0.1  # 1/s^2 [Autoware PID longitudinal controller ki]
    max_integral_mps2: float = 0.3  # anti-windup bound [Autoware PID max_i_effort]
    max_acceleration_mps2: float = 2.0  # [ISO 15622 ACC: +2.0 m/s^2]
    min_acceleration_mps2: float = -3.5  # [ISO 15622 ACC: -3.5 m/s^2]
    # Reached only when the trajectory itself brakes harder than min_acceleration_mps2
    # [Autoware MRM emergency stop, vehicle launch configuration: -6.0 m/s^2, -20 m/s^3].
    emergency_acceleration_mps2: float = -6.0
    emergency_jerk_mps3: float = 20.0
    max_jerk_mps3: float = 5.0  # [Autoware vehicle_cmd_gate lon_jerk_lim 5.0 m/s^3]
    # The stop commanded when tracking is impossible [Autoware MRM emergency stop defaults].
    stop_acceleration_mps2: float = -2.5
    stop_jerk_mps3: float = 1.5
    # Brake hold at rest [Autoware vehicle_cmd_gate stop_hold_acceleration -1.5 m/s^2].
    standstill_acceleration_mps2: float = -1.5
    standstill_speed_mps: float = 0.1  # target and ego speed at or below: at rest (project's)
    # At rest, the car departs once the trajectory travels farther than this before it next
    # stops [Autoware pid_longitudinal_controller drive_state_stop_dist 0.5 m].
    departure_distance_m: float = 0.5
    trajectory_timeout_s: float = 1.0  # [Autoware planning validator: message age 1.0 s]
    odometry_timeout_s: float = 0.5  # [Autoware MRM handler: availability older than 0.5 s]

    def __post_init__(self) -> None:
        """Refuse a configuration the control law cannot run with, naming the problem."""
        c = self
        problems = [
            (not all(math.isfinite(value) for value in astuple(c)), 'every value must be finite'),
            (c.wheelbase_m <= 0.0, 'wheelbase_m must be positive'),
            (c.lookahead_time_s < 0.0, 'lookahead_time_s must not be negative'),
            (
                not 0.0 < c.min_lookahead_m <= c.max_lookahead_m,
                'need 0 < min_lookahead_m <= max_lookahead_m',
            ),
            (
                not 0.0 < c.max_steering_tire_angle_rad < math.pi / 2,
                'max_steering_tire_angle_rad must be in (0, pi/2)',
            ),
            (
                min(c.max_steering_rate_rps, c.max_jerk_mps3, c.emergency_jerk_mps3) <= 0.0,
                'rate and jerk limits must be positive',
            ),
            (c.stop_jerk_mps3 <= 0.0, 'stop_jerk_mps3 must be positive'),
            (min(c.speed_kp, c.speed_ki, c.max_integral_mps2) < 0.0, 'gains must not be negative'),
            (
                not c.emergency_acceleration_mps2
                <= c.min_acceleration_mps2
                < 0.0
                < c.max_acceleration_mps2,
                'need emergency_acceleration <= min_acceleration < 0 < max_acceleration',
            ),
            (
                not c.emergency_acceleration_mps2 <= c.stop_acceleration_mps2 < 0.0,
                'need emergency_acceleration <= stop_acceleration < 0',
            ),
            (
                not c.min_acceleration_mps2 <= c.standstill_acceleration_mps2 < 0.0,
                'need min_acceleration <= standstill_acceleration < 0',
            ),
            (c.standstill_speed_mps < 0.0, 'standstill_speed_mps must not be negative'),
            (c.departure_distance_m < 0.0, 'departure_distance_m must not be negative'),
            (
                min(c.trajectory_timeout_s, c.odometry_timeout_s) <= 0.0,
                'timeouts must be positive',
            ),
        ]
        for failed, text in problems:
            if failed:
                raise ValueError(f'controller configuration: {text}')


@dataclass(frozen=True)
class EgoPose:
    """Measured ego state: rear-axle (base_link) pose in the odometry frame, speed along x."""

    x: float  # m
    y: float  # m
    yaw: float  # rad, counter-clockwise from the frame's x axis
    speed: float  # m/s, negative when rolling backwards
    stamp_s: float  # time of the measurement, s (the caller's clock)


@dataclass(frozen=True)
class StampedPath:
    """A trajectory as arrays, in the odometry frame; times_s is relative to stamp_s."""

    stamp_s: float  # the time at which times_s is zero, s
    times_s: np.ndarray  # (N,) strictly increasing, s
    x: np.ndarray  # (N,) m
    y: np.ndarray  # (N,) m
    yaw: np.ndarray  # (N,) rad
    speed: np.ndarray  # (N,) m/s, not negative (reversing is not supported)
    acceleration: np.ndarray  # (N,) m/s^2


def travel_before_rest(path: StampedPath, elapsed_s: float, rest_mps: float = 1e-3) -> float:
    """Return the metres `path` travels from `elapsed_s` until its speed next falls to rest.

    A plan that starts a stopped car begins slower than any standstill threshold; judged by its
    speed now, a car at rest would hold its brake under every new plan. Autoware decides by the
    distance to the trajectory's next stop point instead, and so does this controller.
    """
    now_speed = float(np.interp(elapsed_s, path.times_s, path.speed))
    later = path.times_s > elapsed_s
    times = np.concatenate([[elapsed_s], path.times_s[later]])
    speeds = np.concatenate([[now_speed], path.speed[later]])
    at_rest = np.flatnonzero(speeds[1:] <= rest_mps)
    end = at_rest[0] + 2 if at_rest.size else len(speeds)
    times, speeds = times[:end], speeds[:end]
    return float(np.sum(0.5 * (speeds[1:] + speeds[:-1]) * np.diff(times)))


@dataclass(frozen=True)
class Command:
    """One control command (the fields of autoware_control_msgs/Control) with diagnostics.

    Every number is finite. While stopping, velocity is 0, the steering is held and
    cross_track_error_m is 0 (there is no usable path to measure it against).
    """

    steering_tire_angle_rad: float  # left positive
    steering_rate_rps: float  # change of the commanded angle over the last step
    velocity_mps: float  # target speed
    acceleration_mps2: float
    jerk_mps3: float  # change of the commanded acceleration over the last step
    cross_track_error_m: float  # ego position from the path, left positive
    target_speed_mps: float  # the trajectory's speed now
    stopping: bool  # True when the command is a stop because tracking was impossible
    reason: str  # 'tracking', 'holding at standstill', or why the command is a stop


def rate_limited(
    current: float, desired: float, max_rate: float, dt: float
) -> tuple[float, float]:
    """Move `current` towards `desired` by at most max_rate·dt; return the value and its rate."""
    change = float(np.clip(desired - current, -max_rate * dt, max_rate * dt))
    return current + change, change / dt if dt > 0.0 else 0.0


class TrackingController:
    """Follow a timed trajectory: pure pursuit steering and feed-forward + PI speed control.

    Steering: the lookahead point lies `lookahead` metres of arc length ahead of the point of the
    path nearest to the vehicle; beyond the path's ends the path continues straight along its
    first and last headings. The curvature of the arc from the rear axle through that point
    (2·lateral offset / distance²) gives the tire angle atan(wheelbase · curvature), clamped to
    the maximum and then rate-limited.

    Speed: the target is the trajectory's speed at the current time (interpolated linearly by
    the time since its stamp, the first or last point's value outside it). Time, not the nearest
    point, indexes the speed profile because a stop trajectory ends in points that coincide,
    where a nearest point does not exist; position along the path is corrected by the planner
    re-issuing the trajectory from the current pose every cycle, not here. The command is the
    trajectory's acceleration (feed-forward) plus PI on the speed error, clamped to
    [min_acceleration, max_acceleration] (lowered towards the emergency limit only as far as the
    trajectory itself brakes), then limited in jerk. The integral is frozen while the command is
    limited in the direction the error pushes (anti-windup) and bounded.

    Every command, tracking or stop, then passes the gate's hard limits (command_gate), and the
    gated command is what the next step starts from.
    """

    def __init__(
        self, config: ControllerConfig | None = None, gate_limits: GateLimits = HARD_LIMITS
    ) -> None:
        self.config = config or ControllerConfig()
        self.gate = CommandGate(gate_limits)
        self._last_now_s: float | None = None
        self._steering = 0.0
        self._acceleration = 0.0
        self._integral = 0.0

    def step(self, now_s: float, ego: EgoPose | None, trajectory: StampedPath | None) -> Command:
        """Return the command for time `now_s` (the caller's clock, as the stamps are)."""
        dt = self._advance(now_s)
        speed = ego.speed if ego is not None and math.isfinite(ego.speed) else None
        problem = self.problem(now_s, ego, trajectory)
        if problem is not None:
            return self._gated(now_s, self._stop(dt, problem), speed)
        with np.errstate(all='ignore'):  # overflow on absurd but finite input: checked below
            command, integral = self._track(dt, now_s, ego, trajectory)
        numbers = (value for value in astuple(command) if isinstance(value, float))
        if not all(math.isfinite(value) for value in numbers):
            return self._gated(
                now_s, self._stop(dt, 'tracking produced a non-finite value'), speed
            )
        self._integral = integral
        return self._gated(now_s, command, speed)

    def stop(self, now_s: float, reason: str) -> Command:
        """Return a stop command for a reason found by the caller (e.g. a frame mismatch)."""
        return self._gated(now_s, self._stop(self._advance(now_s), reason), None)

    def _gated(self, now_s: float, command: Command, ego_speed: float | None) -> Command:
        """Pass `command` through the gate; the next step starts from what went out."""
        command = self.gate.apply(now_s, command, ego_speed)
        self._steering, self._acceleration = (
            command.steering_tire_angle_rad,
            command.acceleration_mps2,
        )
        return command

    def _advance(self, now_s: float) -> float:
        """Return the time since the previous step; 0 at the first, or when time went back."""
        if not math.isfinite(now_s):
            return 0.0
        last, self._last_now_s = self._last_now_s, now_s
        if last is None or now_s < last:  # start, or a bag loop or simulator reset
            self._integral = 0.0
            return 0.0
        return now_s - last

    def problem(
        self, now_s: float, ego: EgoPose | None, trajectory: StampedPath | None
    ) -> str | None:
        """Return why the inputs cannot be tracked, or None when they can (no state changes)."""
        c = self.config
        if not math.isfinite(now_s):
            return f'time is not finite ({now_s})'
        if trajectory is None:
            return 'no trajectory'
        arrays = (
            trajectory.times_s,
            trajectory.x,
            trajectory.y,
            trajectory.yaw,
            trajectory.speed,
            trajectory.acceleration,
        )
        if np.ndim(trajectory.times_s) != 1 or any(
            np.shape(array) != np.shape(trajectory.times_s) for array in arrays
        ):
            return 'trajectory arrays are not one-dimensional of one length'
        if len(trajectory.times_s) == 0:
            return 'empty trajectory'
        if not math.isfinite(trajectory.stamp_s) or not all(
            np.all(np.isfinite(array)) for array in arrays
        ):
            return 'trajectory has non-finite values'
        if np.any(np.diff(trajectory.times_s) <= 0.0):
            return 'trajectory times are not strictly increasing'
        if np.any(trajectory.speed < 0.0):
            return 'trajectory reverses: not supported'
        age_s = now_s - trajectory.stamp_s
        if age_s > c.trajectory_timeout_s:
            return f'trajectory is {age_s:.2f} s old (limit {c.trajectory_timeout_s} s)'
        if ego is None:
            return 'no odometry'
        if not all(math.isfinite(value) for value in astuple(ego)):
            return 'ego state is not finite'
        age_s = now_s - ego.stamp_s
        if age_s > c.odometry_timeout_s:
            return f'odometry is {age_s:.2f} s old (limit {c.odometry_timeout_s} s)'
        return None

    def _stop(self, dt: float, reason: str) -> Command:
        """Brake at the stop deceleration (or harder, if already braking harder), steering held.

        A stop brakes from its first command: a positive acceleration is dropped at once (a
        frozen monitor must not leave the car accelerating while the stop ramps down), then the
        braking reaches the stop deceleration at the stop jerk. It never brakes less than the
        command before it.
        """
        c = self.config
        self._integral = 0.0
        start = min(self._acceleration, 0.0)
        acceleration, _ = rate_limited(
            start, min(start, c.stop_acceleration_mps2), c.stop_jerk_mps3, dt
        )
        jerk = (acceleration - self._acceleration) / dt if dt > 0.0 else 0.0
        self._acceleration = acceleration
        return Command(
            steering_tire_angle_rad=self._steering,
            steering_rate_rps=0.0,
            velocity_mps=0.0,
            acceleration_mps2=self._acceleration,
            jerk_mps3=jerk,
            cross_track_error_m=0.0,
            target_speed_mps=0.0,
            stopping=True,
            reason=reason,
        )

    def _track(
        self, dt: float, now_s: float, ego: EgoPose, path: StampedPath
    ) -> tuple[Command, float]:
        """Return the tracking command and the new integral (committed by the caller)."""
        c = self.config
        lookahead_m = float(
            np.clip(
                c.lookahead_time_s * abs(ego.speed) + c.min_lookahead_m,
                c.min_lookahead_m,
                c.max_lookahead_m,
            )
        )
        target, cross_track_m = self._lookahead_point(ego, path, lookahead_m)

        dx, dy = target[0] - ego.x, target[1] - ego.y
        cos_yaw, sin_yaw = math.cos(ego.yaw), math.sin(ego.yaw)
        forward, left = cos_yaw * dx + sin_yaw * dy, -sin_yaw * dx + cos_yaw * dy
        distance_sq = forward * forward + left * left
        curvature = 2.0 * left / distance_sq if distance_sq > 0.0 else 0.0
        desired_steering = float(
            np.clip(
                math.atan(c.wheelbase_m * curvature),
                -c.max_steering_tire_angle_rad,
                c.max_steering_tire_angle_rad,
            )
        )
        steering, steering_rate = rate_limited(
            self._steering, desired_steering, c.max_steering_rate_rps, dt
        )

        elapsed_s = now_s - path.stamp_s
        target_speed = float(np.interp(elapsed_s, path.times_s, path.speed))
        feed_forward = float(np.interp(elapsed_s, path.times_s, path.acceleration))
        hardest = float(np.min(path.acceleration))
        lowest = max(c.emergency_acceleration_mps2, min(c.min_acceleration_mps2, hardest))
        jerk_limit = (
            c.emergency_jerk_mps3 if hardest < c.min_acceleration_mps2 else c.max_jerk_mps3
        )
        at_rest = (
            target_speed <= c.standstill_speed_mps
            and abs(ego.speed) <= c.standstill_speed_mps
            and travel_before_rest(path, elapsed_s) <= c.departure_distance_m
        )
        error = target_speed - ego.speed
        integral = float(
            np.clip(
                self._integral + c.speed_ki * error * dt, -c.max_integral_mps2, c.max_integral_mps2
            )
        )
        if at_rest:
            unlimited = desired = c.standstill_acceleration_mps2
            integral = 0.0
        else:
            unlimited = feed_forward + c.speed_kp * error + integral
            desired = float(np.clip(unlimited, lowest, c.max_acceleration_mps2))
        acceleration, jerk = rate_limited(self._acceleration, desired, jerk_limit, dt)
        if (error > 0.0 and acceleration < unlimited) or (
            error < 0.0 and acceleration > unlimited
        ):
            integral = self._integral  # limited in the direction the error pushes: do not wind up

        command = Command(
            steering_tire_angle_rad=steering,
            steering_rate_rps=steering_rate,
            velocity_mps=0.0 if at_rest else target_speed,  # at rest: exactly 0, as Autoware
            acceleration_mps2=acceleration,
            jerk_mps3=jerk,
            cross_track_error_m=cross_track_m,
            target_speed_mps=target_speed,
            stopping=False,
            reason='holding at standstill' if at_rest else 'tracking',
        )
        return command, integral

    def _lookahead_point(
        self, ego: EgoPose, path: StampedPath, lookahead_m: float
    ) -> tuple[np.ndarray, float]:
        """Return the pure-pursuit target point and the signed cross-track error.

        The path is extended straight along its first and last headings, far enough that the
        point nearest to the vehicle and the lookahead point always fall on it.
        """
        position = np.array([ego.x, ego.y])
        points = np.column_stack([path.x, path.y])
        yaws = np.concatenate([path.yaw[:1], path.yaw, path.yaw[-1:]])
        headings = np.column_stack([np.cos(yaws), np.sin(yaws)])
        reach = (
            self.config.max_lookahead_m
            + np.linalg.norm(position - points[0])
            + np.linalg.norm(position - points[-1])
        )
        polyline = np.vstack(
            [points[0] - reach * headings[0], points, points[-1] + reach * headings[-1]]
        )
        starts, segments = polyline[:-1], np.diff(polyline, axis=0)
        lengths = np.linalg.norm(segments, axis=1)
        safe_lengths = np.where(lengths > 0.0, lengths, 1.0)
        fractions = np.clip(
            np.einsum('ij,ij->i', position - starts, segments) / safe_lengths**2, 0.0, 1.0
        )
        projections = starts + fractions[:, None] * segments
        nearest = int(np.argmin(np.linalg.norm(position - projections, axis=1)))
        tangent = (
            segments[nearest] / lengths[nearest] if lengths[nearest] > 0.0 else headings[nearest]
        )
        offset = position - projections[nearest]
        cross_track_m = float(tangent[0] * offset[1] - tangent[1] * offset[0])

        arc = np.concatenate([[0.0], np.cumsum(lengths)])
        wanted = min(arc[nearest] + fractions[nearest] * lengths[nearest] + lookahead_m, arc[-1])
        index = int(np.clip(np.searchsorted(arc, wanted, side='right') - 1, 0, len(segments) - 1))
        fraction = np.clip((wanted - arc[index]) / safe_lengths[index], 0.0, 1.0)
        return starts[index] + fraction * segments[index], cross_track_m
