"""The safety monitor core: every cycle, judge the inputs and the model's plan, decide, output.

ROS-free: the node, replay and the simulator loop feed it inputs as they arrive (`on_plan`,
`on_odometry`, `on_obstacles`, `on_sensor_status`) and call `step(now_ns)` on a timer. A cycle
runs whether or not anything arrived, so silence is judged like any other fault.

Frames: a plan is in base_link at its stamp; the monitor anchors it in the odometry frame
(odom) with the ego pose at that stamp, and everything it publishes is in odom with time 0 at
the cycle (`step`'s `now_ns`). Obstacles in base_link are anchored the same way.
"""

import math
from collections import deque
from dataclasses import dataclass, replace
from enum import Enum

import numpy as np

from vla_planning.collision import Lead, Obstacles, VehicleShape, find_lead, first_conflict_s
from vla_planning.collision import check_collision as collision_check
from vla_planning.safety_rules import (
    Check,
    RssParameters,
    SafetyLimits,
    Verdict,
    cannot_evaluate,
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
from vla_planning.safety_states import SafetyState, SafetyStateMachine, StateMachineConfig
from vla_planning.speed_profiles import StopProfile, clamp_speeds, standstill, stop_along
from vla_planning.timed_path import (
    TimedPath,
    from_plan,
    jerks,
    path_turns,
    project_onto_polyline,
    retime,
    state_at,
    thinned,
    transform,
)

NS_PER_S = 1_000_000_000
EXTRAPOLATION_NS = 100_000_000
"""How far past the newest odometry sample a pose may be extrapolated to anchor an input."""

LOOK_AHEAD_M = 200.0
"""Length of the straight path used when there is no valid path to follow."""


class Origin(Enum):
    """Where a published trajectory comes from; values are vla_msgs/Trajectory.ORIGIN_*."""

    MODEL = 0
    MODEL_SPEED_CLAMPED = 1
    HELD_PLAN = 2
    COMFORTABLE_STOP = 3
    EMERGENCY_STOP = 4


@dataclass(frozen=True)
class PlanInput:
    """The model's selected trajectory: points after the origin, in base_link at the stamp."""

    stamp_ns: int
    times_s: np.ndarray  # (n,) time_from_start
    poses: np.ndarray  # (n, 3) x, y, heading
    confidence: float


@dataclass(frozen=True)
class EgoSample:
    """One odometry sample: pose of base_link in odom, speed and yaw rate."""

    stamp_ns: int
    pose: np.ndarray  # x, y (m), yaw (rad)
    speed_mps: float
    yaw_rate_rps: float


@dataclass(frozen=True)
class ObstacleInput:
    """Obstacles from the independent source; in base_link at the stamp unless in_odom."""

    stamp_ns: int
    obstacles: Obstacles
    in_odom: bool


@dataclass(frozen=True)
class SensorStatusInput:
    """The health of the cameras in the last SensorFrame (vla_msgs/InputStatus.HEALTH_*)."""

    stamp_ns: int
    camera_healths: tuple[int, ...]


@dataclass(frozen=True)
class MonitorConfig:
    """All settings of the monitor; the limits are the node's read-only parameters."""

    limits: SafetyLimits = SafetyLimits()
    rss: RssParameters = RssParameters()
    shape: VehicleShape = VehicleShape()
    machine: StateMachineConfig = StateMachineConfig()
    # [Autoware MRM comfortable stop: -1.0 m/s^2, jerk 0.3 m/s^3]
    comfortable_stop: StopProfile = StopProfile(1.0, 0.3)
    # [Autoware MRM emergency stop, a vehicle launch configuration: -6.0 m/s^2, jerk 20 m/s^3]
    emergency_stop: StopProfile = StopProfile(6.0, 20.0)
    degraded_max_speed_mps: float = 25.0  # speed cap while DEGRADED (project's: 90 km/h)
    collision_horizon_s: float = 4.5  # [Autoware AEB: predicted trajectory 4.5 s]
    require_obstacles: bool = True  # without an obstacle source, stop (False: no collision rules)
    # False: log-only. Every rule runs and the state machine reports what it would do, but the
    # model's plan is published whenever there is a sane one (what the model does on its own).
    enforce: bool = True


@dataclass(frozen=True)
class MonitorOutput:
    """One cycle's decision: the trajectory to publish and why."""

    stamp_ns: int
    state: SafetyState
    origin: Origin
    trajectory: TimedPath  # time 0 = stamp_ns; in odom, or base_link when in_odom is False
    in_odom: bool
    checks: tuple[Check, ...]
    latched: bool
    emergency: bool
    clean_cycles: int
    ages_s: dict[str, float]  # plan, sensor_frame, odometry, obstacles
    time_to_collision_s: float  # first conflict of the published trajectory; +inf if none
    lead_distance_m: float  # NaN when there is no lead
    rss_safe_distance_m: float  # NaN when there is no lead


class EgoHistory:
    """Recent odometry, to find where the vehicle was when an input was stamped."""

    def __init__(self, span_ns: int = 3 * NS_PER_S) -> None:
        self.span_ns = span_ns
        self._samples: deque[EgoSample] = deque()

    @property
    def latest(self) -> EgoSample | None:
        """The newest sample, or None."""
        return self._samples[-1] if self._samples else None

    def add(self, sample: EgoSample) -> None:
        """Append a sample; an older stamp than the newest restarts the history (time jump)."""
        if self._samples and sample.stamp_ns <= self._samples[-1].stamp_ns:
            self._samples.clear()
        self._samples.append(sample)
        while sample.stamp_ns - self._samples[0].stamp_ns > self.span_ns:
            self._samples.popleft()

    def clear(self) -> None:
        """Forget every sample."""
        self._samples.clear()

    def pose_at(self, stamp_ns: int) -> np.ndarray | None:
        """Return the pose at `stamp_ns`, interpolated; None outside the history.

        Up to EXTRAPOLATION_NS past the newest sample, the pose is dead-reckoned.
        """
        if not self._samples or stamp_ns < self._samples[0].stamp_ns:
            return None
        latest = self._samples[-1]
        if stamp_ns >= latest.stamp_ns:
            if stamp_ns - latest.stamp_ns > EXTRAPOLATION_NS:
                return None
            return self.predict(stamp_ns)
        stamps = [sample.stamp_ns for sample in self._samples]
        after = int(np.searchsorted(stamps, stamp_ns, side='right'))
        a, b = self._samples[after - 1], self._samples[after]
        fraction = (stamp_ns - a.stamp_ns) / (b.stamp_ns - a.stamp_ns)
        turn = math.remainder(float(b.pose[2] - a.pose[2]), 2 * math.pi)
        return np.array(
            [
                a.pose[0] + fraction * (b.pose[0] - a.pose[0]),
                a.pose[1] + fraction * (b.pose[1] - a.pose[1]),
                a.pose[2] + fraction * turn,
            ]
        )

    def predict(self, stamp_ns: int) -> np.ndarray:
        """Dead-reckon the newest pose to `stamp_ns` at its speed and yaw rate (straight if 0)."""
        latest = self._samples[-1]
        dt = max(stamp_ns - latest.stamp_ns, 0) / NS_PER_S
        x, y, yaw = latest.pose
        distance, turn = latest.speed_mps * dt, latest.yaw_rate_rps * dt
        heading = yaw + turn / 2  # chord direction of a constant-curvature arc
        chord = distance * (math.sin(turn / 2) / (turn / 2) if abs(turn) > 1e-9 else 1.0)
        return np.array([x + chord * math.cos(heading), y + chord * math.sin(heading), yaw + turn])


@dataclass
class _PlanState:
    """A received plan and what is known about it (its own checks do not change)."""

    plan: PlanInput
    checks: list[Check]
    sane: bool  # finite, timed and spaced: its path can be used at all
    path: TimedPath | None = None  # in odom once anchored


class SafetyMonitor:
    """Judge inputs and plan every cycle; publish the plan, a clamped or held one, or a stop."""

    def __init__(self, config: MonitorConfig = MonitorConfig()) -> None:
        self.config = config
        self.machine = SafetyStateMachine(config.machine)
        self.history = EgoHistory()
        self._plan: _PlanState | None = None
        self._last_valid: tuple[TimedPath, int] | None = None  # odom path and its stamp
        self._obstacles: ObstacleInput | None = None
        self._sensor_status: SensorStatusInput | None = None
        self._last_output: MonitorOutput | None = None
        self._last_now_ns: int | None = None

    def on_plan(self, plan: PlanInput) -> None:
        """Take a new model plan; its own checks run once, here."""
        self._plan = self._judge_plan(plan)

    def on_invalid_plan(self, stamp_ns: int, reason: str) -> None:
        """Take a plan message that could not be read: it replaces the plan and is refused."""
        plan = PlanInput(stamp_ns, np.zeros(0), np.zeros((0, 3)), math.nan)
        refused = Check('sanity.message', Verdict.OVERRIDE, reason, math.nan, math.nan)
        self._plan = _PlanState(plan, [refused], sane=False)

    def on_odometry(self, sample: EgoSample) -> None:
        """Take an odometry sample."""
        self.history.add(sample)

    def on_obstacles(self, obstacles: ObstacleInput) -> None:
        """Take the latest obstacles (an empty set is a fresh "all clear")."""
        self._obstacles = obstacles

    def on_sensor_status(self, status: SensorStatusInput) -> None:
        """Take the status of the latest SensorFrame."""
        self._sensor_status = status

    def set_degraded_max_speed(self, speed_mps: float) -> None:
        """Change the DEGRADED speed cap (validated by the caller against the hard limits)."""
        self.config = replace(self.config, degraded_max_speed_mps=speed_mps)

    def step(self, now_ns: int) -> MonitorOutput:
        """Run one cycle at `now_ns` (ROS time) and return what to publish."""
        if self._last_now_ns is not None and now_ns < self._last_now_ns:
            self._forget_inputs()  # time went backwards (a bag loop, a simulator reset)
        self._last_now_ns = now_ns
        config, limits = self.config, self.config.limits
        ego = self.history.latest
        ages = self._ages(now_ns)
        checks = [
            check_age('freshness.plan', ages['plan'], limits.plan_age_s, Verdict.OVERRIDE),
            check_age(
                'freshness.plan_lost', ages['plan'], limits.plan_lost_s, Verdict.MINIMAL_RISK
            ),
            check_age(
                'freshness.odometry', ages['odometry'], limits.odometry_age_s, Verdict.MINIMAL_RISK
            ),
            check_age(
                'freshness.sensor_frame',
                ages['sensor_frame'],
                limits.sensor_frame_age_s,
                Verdict.MINIMAL_RISK,
            ),
            check_cameras(
                'sensors.cameras',
                list(self._sensor_status.camera_healths) if self._sensor_status else [],
                limits.max_cameras_not_ok,
            ),
        ]
        obstacles = self._obstacles_now(now_ns, checks, ages['obstacles'])
        plan_path, plan_checks = self._current_plan(now_ns, ego)
        checks += plan_checks
        lead_path = plan_path if plan_path is not None else self._straight_ahead(now_ns)
        lead, conflicts = None, {}
        if obstacles is not None and lead_path is not None:
            if plan_path is not None:
                conflicts[id(plan_path)] = self._conflict(plan_path, obstacles)
                checks.append(
                    collision_check(
                        'collision.swept',
                        conflicts[id(plan_path)],
                        limits.min_time_to_collision_s,
                    )
                )
            lead = find_lead(lead_path.poses[:, :2], obstacles, config.shape)
        ego_speed = ego.speed_mps if ego else math.nan
        rss_distance = math.nan
        if lead is not None:
            ttc = time_to_collision(lead.gap_m, ego_speed - lead.speed_mps)
            checks.append(
                check_time_to_collision('collision.ttc', ttc, limits.min_time_to_collision_s)
            )
            lead_speed = max(lead.speed_mps, 0.0)
            checks.append(
                check_rss('collision.rss', lead.gap_m, ego_speed, lead_speed, config.rss)
            )
            rss_distance = rss_safe_distance(ego_speed, lead_speed, config.rss)
        plan_verdict = max((check.verdict for check in plan_checks), default=Verdict.OVERRIDE)
        collision_verdict = max(
            (c.verdict for c in checks if c.rule.startswith('collision.')), default=Verdict.PASS
        )
        if plan_path is not None and max(plan_verdict, collision_verdict) <= Verdict.DEGRADE:
            self._last_valid = (self._plan.path, self._plan.plan.stamp_ns)
        held = self._held(now_ns, obstacles, plan_path, conflicts)
        verdict = max(check.verdict for check in checks)
        state = self.machine.update(verdict, now_ns / NS_PER_S, held is not None)
        origin, trajectory, in_odom = self._decide(
            state, now_ns, plan_path, held, obstacles, lead, checks, conflicts
        )
        if not config.enforce and plan_path is not None:
            origin, trajectory, in_odom = Origin.MODEL, plan_path, True
        conflict = math.inf
        if obstacles is not None and in_odom:
            conflict = conflicts.get(id(trajectory))
            if conflict is None:
                conflict = self._conflict(trajectory, obstacles)
        output = MonitorOutput(
            stamp_ns=now_ns,
            state=self.machine.state,
            origin=origin,
            trajectory=trajectory,
            in_odom=in_odom,
            checks=tuple(checks),
            latched=self.machine.latched,
            emergency=self.machine.emergency,
            clean_cycles=self.machine.clean_cycles,
            ages_s=ages,
            time_to_collision_s=conflict,
            lead_distance_m=lead.gap_m if lead else math.nan,
            rss_safe_distance_m=rss_distance,
        )
        self._last_output = output
        return output

    def _forget_inputs(self) -> None:
        self.history.clear()
        self._plan = self._last_valid = self._obstacles = self._sensor_status = None
        self._last_output = None

    def _ages(self, now_ns: int) -> dict[str, float]:
        def age(stamp_ns: int | None) -> float:
            return math.inf if stamp_ns is None else (now_ns - stamp_ns) / NS_PER_S

        ego = self.history.latest
        return {
            'plan': age(self._plan.plan.stamp_ns if self._plan else None),
            'sensor_frame': age(self._sensor_status.stamp_ns if self._sensor_status else None),
            'odometry': age(ego.stamp_ns if ego else None),
            'obstacles': age(self._obstacles.stamp_ns if self._obstacles else None),
        }

    def _judge_plan(self, plan: PlanInput) -> _PlanState:
        """Run the checks that depend on the plan alone: sanity, kinematics, confidence."""
        limits = self.config.limits
        checks = [
            check_finite(
                'sanity.finite',
                {'time_from_start': plan.times_s, 'poses': plan.poses},
            )
        ]
        if checks[0].verdict == Verdict.PASS:
            checks.append(check_times('sanity.times', plan.times_s, limits.min_horizon_s))
        if checks[-1].verdict == Verdict.PASS:
            checks.append(
                check_spacing('sanity.spacing', plan.poses[:, :2], limits.max_point_spacing_m)
            )
        sane = all(check.verdict == Verdict.PASS for check in checks)
        if sane:
            path = from_plan(plan.times_s, plan.poses)
            geometry_times, geometry_poses = thinned(path.times_s, path.poses)
            turns = path_turns(geometry_times, geometry_poses)
            steering = np.arctan(self.config.shape.wheelbase_m * turns.curvatures_1pm)
            turning = np.abs(turns.turn_angles_rad)
            checks += [
                check_range(
                    'sanity.relative_angle',
                    turning,
                    0.0,
                    limits.max_relative_angle_rad,
                    'rad',
                    Verdict.OVERRIDE,
                ),
                check_range(
                    'kinematics.speed_limit',
                    path.speeds_mps,
                    0.0,
                    limits.speed_limit_mps,
                    'm/s',
                    Verdict.DEGRADE,
                ),
                check_range(
                    'kinematics.acceleration',
                    path.accelerations_mps2,
                    limits.min_acceleration_mps2,
                    limits.max_acceleration_mps2,
                    'm/s^2',
                    Verdict.DEGRADE,
                ),
                check_range(
                    'kinematics.jerk',
                    jerks(path),
                    -limits.max_longitudinal_jerk_mps3,
                    limits.max_longitudinal_jerk_mps3,
                    'm/s^3',
                    Verdict.DEGRADE,
                ),
                check_range(
                    'kinematics.lateral_acceleration',
                    turns.speeds_mps * turns.yaw_rates_rps,
                    -limits.max_lateral_acceleration_mps2,
                    limits.max_lateral_acceleration_mps2,
                    'm/s^2',
                    Verdict.OVERRIDE,
                ),
                check_range(
                    'kinematics.curvature',
                    np.abs(turns.curvatures_1pm[turns.speeds_mps > 0.5]),
                    0.0,
                    limits.max_curvature_1pm,
                    '1/m',
                    Verdict.OVERRIDE,
                ),
                check_range(
                    'kinematics.steering_rate',
                    np.abs(
                        (steering[1:] - steering[:-1])
                        / (geometry_times[2:] - geometry_times[1:-1])
                    ),
                    0.0,
                    limits.max_steering_rate_rps,
                    'rad/s',
                    Verdict.OVERRIDE,
                ),
            ]
        checks.append(check_confidence('model.confidence', plan.confidence, limits.min_confidence))
        return _PlanState(plan, checks, sane)

    def _current_plan(
        self, now_ns: int, ego: EgoSample | None
    ) -> tuple[TimedPath | None, list[Check]]:
        """Return the current plan in odom from now on, and its checks (continuity included)."""
        current = self._plan
        if current is None:
            return None, []
        checks = list(current.checks)
        if not current.sane:
            return None, checks
        if current.path is None:
            anchor = self.history.pose_at(current.plan.stamp_ns)
            if anchor is None:
                checks.append(
                    cannot_evaluate(
                        'continuity.start',
                        'no odometry at the plan stamp to anchor it',
                        Verdict.OVERRIDE,
                    )
                )
                return None, checks
            current.path = transform(from_plan(current.plan.times_s, current.plan.poses), anchor)
        if ego is not None:
            at_ego = (ego.stamp_ns - current.plan.stamp_ns) / NS_PER_S
            pose, speed, _ = state_at(current.path, at_ego)
            checks.append(
                check_continuity(
                    'continuity.start', pose, speed, ego.pose, ego.speed_mps, self.config.limits
                )
            )
        path = retime(current.path, (now_ns - current.plan.stamp_ns) / NS_PER_S)
        if len(path) < 2:
            checks.append(
                Check('freshness.plan_horizon', Verdict.OVERRIDE, 'the plan has ended', 0, 0)
            )
            return None, checks
        return path, checks

    def _obstacles_now(self, now_ns: int, checks: list[Check], age_s: float) -> Obstacles | None:
        """Obstacles in odom, moved to now; appends their freshness check."""
        limits = self.config.limits
        if not self.config.require_obstacles and self._obstacles is None:
            checks.append(Check('freshness.obstacles', Verdict.PASS, 'not required', age_s, 0))
            return None
        checks.append(
            check_age('freshness.obstacles', age_s, limits.obstacles_age_s, Verdict.MINIMAL_RISK)
        )
        source = self._obstacles
        if source is None or checks[-1].verdict != Verdict.PASS:
            return None
        obstacles = source.obstacles
        if not source.in_odom:
            anchor = self.history.pose_at(source.stamp_ns)
            if anchor is None:
                checks.append(
                    cannot_evaluate(
                        'collision.anchor',
                        'no odometry at the obstacles stamp',
                        Verdict.MINIMAL_RISK,
                    )
                )
                return None
            obstacles = obstacles_in_odom(obstacles, anchor)
        return obstacles.moved((now_ns - source.stamp_ns) / NS_PER_S)

    def _conflict(self, path: TimedPath, obstacles: Obstacles) -> float:
        return first_conflict_s(
            path, obstacles, self.config.shape, self.config.collision_horizon_s
        )

    def _held(
        self,
        now_ns: int,
        obstacles: Obstacles | None,
        plan_path: TimedPath | None,
        conflicts: dict[int, float],
    ) -> TimedPath | None:
        """Return the last valid plan re-timed to now, if it still has a future and no conflict.

        When the last valid plan is the current one, its path and conflict are reused.
        """
        if self._last_valid is None:
            return None
        path, stamp_ns = self._last_valid
        if plan_path is not None and stamp_ns == self._plan.plan.stamp_ns:
            held = plan_path
        else:
            held = retime(path, (now_ns - stamp_ns) / NS_PER_S)
        if len(held) < 2:
            return None
        if obstacles is not None:
            if id(held) not in conflicts:
                conflicts[id(held)] = self._conflict(held, obstacles)
            if math.isfinite(conflicts[id(held)]):
                return None
        return held

    def _decide(
        self,
        state: SafetyState,
        now_ns: int,
        plan_path: TimedPath | None,
        held: TimedPath | None,
        obstacles: Obstacles | None,
        lead: Lead | None,
        checks: list[Check],
        conflicts: dict[int, float],
    ) -> tuple[Origin, TimedPath, bool]:
        if state == SafetyState.NOMINAL and plan_path is not None:
            return Origin.MODEL, plan_path, True
        if state == SafetyState.DEGRADED and plan_path is not None:
            return Origin.MODEL_SPEED_CLAMPED, self._clamped(plan_path, lead), True
        if (
            state in (SafetyState.NOMINAL, SafetyState.DEGRADED, SafetyState.OVERRIDE)
            and held is not None
        ):
            return Origin.HELD_PLAN, self._clamped(held, lead), True
        stop = self._stop(now_ns, held, emergency=self.machine.emergency)
        if stop is None:
            return Origin.EMERGENCY_STOP, standstill(np.zeros(3)), False
        if not self.machine.emergency and obstacles is not None:
            conflict = conflicts[id(stop)] = self._conflict(stop, obstacles)
            if math.isfinite(conflict):
                checks.append(
                    Check(
                        'collision.comfortable_stop',
                        Verdict.EMERGENCY,
                        f'a comfortable stop hits an obstacle after {conflict:.1f} s',
                        conflict,
                        math.inf,
                    )
                )
                self.machine.demand_emergency()
                stop = self._stop(now_ns, held, emergency=True)
        origin = Origin.EMERGENCY_STOP if self.machine.emergency else Origin.COMFORTABLE_STOP
        return origin, stop, True

    def _clamped(self, path: TimedPath, lead: Lead | None) -> TimedPath:
        """Cap the path's speeds: limit, DEGRADED cap, curvature, RSS gap to the lead."""
        config, limits = self.config, self.config.limits
        cap = min(limits.speed_limit_mps, config.degraded_max_speed_mps)
        if lead is not None:
            cap = min(cap, rss_safe_speed(lead.gap_m, lead.speed_mps, config.rss))
        turns = path_turns(path.times_s, path.poses)
        curvature = np.abs(turns.curvatures_1pm)
        per_point = np.maximum(
            np.concatenate([[0.0], curvature]), np.concatenate([curvature, [0.0]])
        )
        lateral_cap = np.sqrt(limits.max_lateral_acceleration_mps2 / np.maximum(per_point, 1e-9))
        caps = np.minimum(lateral_cap, cap)
        return clamp_speeds(
            path, caps, limits.max_acceleration_mps2, -limits.min_acceleration_mps2
        )

    def _stop(self, now_ns: int, held: TimedPath | None, emergency: bool) -> TimedPath | None:
        """Stop from the vehicle's state along the held (or last valid) path, else straight."""
        if self.history.latest is None:
            return None
        ego_pose = self.history.predict(now_ns)
        speed, acceleration = self._motion_now(now_ns)
        path_xy = self._path_to_follow(now_ns, held, ego_pose)
        profile = self.config.emergency_stop if emergency else self.config.comfortable_stop
        return stop_along(path_xy, float(ego_pose[2]), speed, acceleration, profile)

    def _motion_now(self, now_ns: int) -> tuple[float, float]:
        """Return the speed (measured) and acceleration (last published) a stop starts from.

        The speed is the last measured one even when odometry is stale: what the vehicle did is
        a better start than what it was last told (a plan may have asked for more). Only with
        no odometry at all does the last published trajectory's speed stand in.
        """
        ego = self.history.latest
        previous = self._last_output
        acceleration, speed = 0.0, 0.0
        if previous is not None and previous.in_odom:
            _, speed, acceleration = state_at(
                previous.trajectory, (now_ns - previous.stamp_ns) / NS_PER_S
            )
        if ego is not None and math.isfinite(ego.speed_mps):
            speed = ego.speed_mps
        return max(speed, 0.0), acceleration

    def _path_to_follow(
        self, now_ns: int, held: TimedPath | None, ego_pose: np.ndarray
    ) -> np.ndarray:
        """Return a polyline from the vehicle along the last valid path, if it is on that path.

        "On" means within 2 x max_position_deviation_m of the path (segments, not only its
        points: a model plan's points are 0.5 s apart, over 10 m at speed).
        """
        candidates = []
        if held is not None:
            candidates.append(held.poses[:, :2])
        if self._last_valid is not None:
            candidates.append(self._last_valid[0].poses[:, :2])
        for xy in candidates:
            projection = project_onto_polyline(xy, ego_pose[None, :2])
            if (
                projection is not None
                and projection.lateral_m[0] <= 2 * self.config.limits.max_position_deviation_m
            ):
                return np.vstack([ego_pose[:2], xy[projection.next_vertex[0] :]])
        return self._straight_xy(ego_pose)

    def _straight_ahead(self, now_ns: int) -> TimedPath | None:
        """Return the road straight ahead of the vehicle, untimed: where to look for a lead."""
        if self.history.latest is None:
            return None
        pose = self.history.predict(now_ns)
        xy = self._straight_xy(pose)
        poses = np.column_stack([xy, [pose[2], pose[2]]])
        return TimedPath(np.array([0.0, 1.0]), poses, np.zeros(2), np.zeros(2))

    @staticmethod
    def _straight_xy(pose: np.ndarray) -> np.ndarray:
        x, y, yaw = pose
        return np.array(
            [[x, y], [x + LOOK_AHEAD_M * math.cos(yaw), y + LOOK_AHEAD_M * math.sin(yaw)]]
        )


def obstacles_in_odom(obstacles: Obstacles, anchor: np.ndarray) -> Obstacles:
    """Express obstacles given in base_link (at a pose `anchor` in odom) in odom."""
    cos, sin = math.cos(anchor[2]), math.sin(anchor[2])
    rotation = np.array([[cos, -sin], [sin, cos]])
    return Obstacles(
        obstacles.centres @ rotation.T + anchor[:2],
        obstacles.yaws + anchor[2],
        obstacles.sizes,
        obstacles.velocities @ rotation.T,
    )
