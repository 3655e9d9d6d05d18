"""The last gate before the vehicle: hard limits every control command obeys, whatever its source.

Autoware keeps such a gate (vehicle_cmd_gate) after its controllers, so that no planner, tuning
or message can ask the vehicle for more than it may do. The tracking controller has limits of its
own, but they are parameters; the gate's are fixed upper bounds (a vehicle may lower them, never
raise them), applied to the finished command, and chosen so that they never bind while the
controller works as configured by default. A command the gate changes is counted by limit.
Sources, also in docs/TRAJECTORY_OUTPUT.md, in brackets.
"""

import math
from dataclasses import astuple, dataclass, fields, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the controller imports this module: no import cycle at run time
    from vla_planning.tracking_controller import Command

# Rise of the command relative to the allowance, tolerated as rounding (never a real change).
ROUNDING = 1e-9


@dataclass(frozen=True)
class GateLimits:
    """Hard limits on a command; the defaults are the largest any configuration may use."""

    # [UN R157 01 series: ALKS up to 130 km/h; the safety monitor's speed_limit_mps]
    max_speed_mps: float = 36.1
    max_acceleration_mps2: float = 2.0  # [ISO 15622 ACC: +2.0 m/s^2]
    # [Autoware MRM emergency stop, a vehicle launch configuration: -6.0 m/s^2]
    min_acceleration_mps2: float = -6.0
    # Rise of the acceleration into driving force [Autoware vehicle_cmd_gate lon_jerk_lim 5.0
    # m/s^3 at 0.3-20 m/s]; releasing a brake (the result still <= 0) may rise at the emergency
    # jerk [Autoware MRM emergency stop, vehicle configuration: 20 m/s^3]. A fall (braking
    # harder) is bounded only by min_acceleration_mps2: a stop must brake at once.
    max_jerk_mps3: float = 5.0
    max_brake_release_jerk_mps3: float = 20.0
    max_steering_tire_angle_rad: float = 0.7  # [Autoware sample vehicle max_steer_angle 0.70]
    # [Autoware vehicle_cmd_gate steer_rate_lim: 1.0 rad/s up to 20 m/s, 0.8 at 30 m/s]
    max_steering_rate_rps: float = 0.8

    def __post_init__(self) -> None:
        """Refuse limits looser than the hard ones (or not finite), naming the first."""
        hard = HARD_LIMITS if 'HARD_LIMITS' in globals() else self
        for field in fields(self):
            value, bound = getattr(self, field.name), getattr(hard, field.name)
            looser = value < bound if bound < 0.0 else not 0.0 < value <= bound
            if not math.isfinite(value) or looser or (bound < 0.0 and value >= 0.0):
                raise ValueError(f'gate limit {field.name} = {value} is outside the hard {bound}')


HARD_LIMITS = GateLimits()
LIMITS = ('non_finite', 'speed', 'acceleration', 'jerk', 'steering_angle', 'steering_rate')


class CommandGate:
    """Clamp each command to the limits; rates are judged against the previous gated command.

    `clamped` counts, per limit, the commands it changed; `last_clamp` says what the last one
    asked for. A command within the limits is returned unchanged (the same object).
    """

    def __init__(self, limits: GateLimits = HARD_LIMITS) -> None:
        self.limits = limits
        self.clamped: dict[str, int] = dict.fromkeys(LIMITS, 0)
        self.last_clamp = 'none'
        self._previous: tuple[float, float, float] | None = None  # time, steering, acceleration

    def apply(self, now_s: float, command: 'Command', ego_speed_mps: float | None) -> 'Command':
        """Return `command` within the limits at `now_s`, given the measured speed (if known)."""
        lim = self.limits
        dt = self._dt(now_s)
        last_steering, last_acceleration = self._previous[1:] if self._previous else (0.0, 0.0)
        changes: dict[str, float] = {}
        notes: list[str] = []

        def clamp(limit: str, name: str, value: float, note: str) -> None:
            self.clamped[limit] += 1
            notes.append(note)
            changes[name] = value

        if not all(math.isfinite(v) for v in astuple(command) if isinstance(v, float)):
            # The controller never gives one; if it did, stop braking, the steering held.
            self.clamped['non_finite'] += 1
            notes.append('a non-finite command: stop')
            command = replace(
                command,
                steering_tire_angle_rad=last_steering,
                steering_rate_rps=0.0,
                velocity_mps=0.0,
                acceleration_mps2=min(last_acceleration, 0.0),
                jerk_mps3=0.0,
                cross_track_error_m=0.0,
                target_speed_mps=0.0,
                stopping=True,
                reason='the gate refused a non-finite command',
            )
        velocity = command.velocity_mps
        if not 0.0 <= velocity <= lim.max_speed_mps:
            clamp(
                'speed',
                'velocity_mps',
                min(max(velocity, 0.0), lim.max_speed_mps),
                f'velocity {velocity:.2f} m/s (limit {lim.max_speed_mps})',
            )
        acceleration = command.acceleration_mps2
        at_speed_limit = ego_speed_mps is not None and ego_speed_mps >= lim.max_speed_mps
        bounded = min(max(acceleration, lim.min_acceleration_mps2), lim.max_acceleration_mps2)
        limit = 'acceleration'
        if at_speed_limit and bounded > 0.0:
            bounded, limit = 0.0, 'speed'  # at the speed limit: no driving force
        if dt is not None:
            rise = lim.max_jerk_mps3 if bounded > 0.0 else lim.max_brake_release_jerk_mps3
            allowed = last_acceleration + rise * dt * (1.0 + ROUNDING)
            if bounded > allowed:
                bounded, limit = (
                    max(last_acceleration + rise * dt, lim.min_acceleration_mps2),
                    'jerk',
                )
        if bounded != acceleration:
            clamp(
                limit,
                'acceleration_mps2',
                bounded,
                f'acceleration {acceleration:.2f} m/s^2 (gated {bounded:.2f}, {limit})',
            )
            if dt is not None:
                changes['jerk_mps3'] = (bounded - last_acceleration) / dt if dt else 0.0
        steering = command.steering_tire_angle_rad
        angle = min(
            max(steering, -lim.max_steering_tire_angle_rad), lim.max_steering_tire_angle_rad
        )
        if angle != steering:
            clamp(
                'steering_angle', 'steering_tire_angle_rad', angle, f'steering {steering:.3f} rad'
            )
        if dt is not None:
            step = lim.max_steering_rate_rps * dt * (1.0 + ROUNDING)
            rated = min(max(angle, last_steering - step), last_steering + step)
            if rated != angle:
                clamp('steering_rate', 'steering_tire_angle_rad', rated, 'steering rate')
                changes['steering_rate_rps'] = (rated - last_steering) / dt if dt else 0.0
        if changes:
            self.last_clamp = '; '.join(notes)
            command = replace(command, **changes)
        elif notes:
            self.last_clamp = notes[0]
        if not math.isfinite(now_s):  # rates stay judged from the last finite time
            now_s = self._previous[0] if self._previous else now_s
        self._previous = (now_s, command.steering_tire_angle_rad, command.acceleration_mps2)
        return command

    def _dt(self, now_s: float) -> float | None:
        """Time since the previous command; None (no rate limit) at the start or after a reset.

        A non-finite time gives 0: nothing may rise.
        """
        if not math.isfinite(now_s):
            return 0.0
        if self._previous is None or not math.isfinite(self._previous[0]):
            return None
        return None if now_s < self._previous[0] else now_s - self._previous[0]
