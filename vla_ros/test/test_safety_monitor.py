"""The SafetyMonitor core through whole scenarios: inputs in, state and trajectory out, per cycle.

The ego drives along odom x at a constant speed (the odometry is the world here); plans are the
straight lines a good model would send. Each test breaks one thing and checks the response.
"""

import math

import numpy as np
import pytest

from vla_planning.collision import Obstacles
from vla_planning.safety_monitor import (
    EgoSample,
    MonitorConfig,
    ObstacleInput,
    Origin,
    PlanInput,
    SafetyMonitor,
    SensorStatusInput,
)
from vla_planning.safety_rules import Verdict
from vla_planning.safety_states import SafetyState
from vla_planning.timed_path import TimedPath, path_turns

NS = 1_000_000_000
CYCLE_NS = NS // 10
PLAN_TIMES = np.arange(1, 7) * 0.5


def boxes(*rows: tuple[float, ...]) -> Obstacles:
    """Obstacles as (x, y, yaw, length, width, vx, vy) rows."""
    data = np.array(rows, dtype=float).reshape(-1, 7)
    return Obstacles(data[:, 0:2], data[:, 2], data[:, 3:5], data[:, 5:7])


class Drive:
    """A monitor fed with fresh inputs every cycle unless a test says otherwise."""

    def __init__(self, speed_mps: float = 20.0, config: MonitorConfig | None = None) -> None:
        self.monitor = SafetyMonitor(config or MonitorConfig())
        self.speed = speed_mps
        self.x = 0.0
        self.t_ns = 0
        self.send_plans = True
        self.plan_speed = speed_mps
        self.cameras = (0,) * 6
        self.obstacles = boxes()  # in odom, moving
        self.outputs = []

    def plan(self, stamp_ns: int) -> PlanInput:
        """Return a straight plan at plan_speed, stamped `stamp_ns`."""
        times = PLAN_TIMES
        poses = np.column_stack([self.plan_speed * times, 0 * times, 0 * times])
        return PlanInput(stamp_ns, times, poses, 0.9)

    def cycle(self, count: int = 1) -> list:
        """Advance `count` cycles; the monitor runs 20 ms after the inputs' stamp."""
        outputs = []
        for _ in range(count):
            self.monitor.on_odometry(
                EgoSample(self.t_ns, np.array([self.x, 0.0, 0.0]), self.speed, 0.0)
            )
            if self.send_plans:
                self.monitor.on_plan(self.plan(self.t_ns))
            self.monitor.on_sensor_status(SensorStatusInput(self.t_ns, self.cameras))
            self.monitor.on_obstacles(ObstacleInput(self.t_ns, self.obstacles, in_odom=True))
            outputs.append(self.monitor.step(self.t_ns + 20_000_000))
            self.t_ns += CYCLE_NS
            self.x += self.speed * CYCLE_NS / NS
            self.obstacles = self.obstacles.moved(CYCLE_NS / NS)
        self.outputs += outputs
        return outputs


def failing(output) -> set[str]:
    return {check.rule for check in output.checks if check.verdict != Verdict.PASS}


def test_nominal_plan_passes_through_anchored_in_odom_and_retimed():
    drive = Drive()
    drive.cycle(5)
    output = drive.outputs[-1]
    assert (output.state, output.origin, failing(output)) == (
        SafetyState.NOMINAL,
        Origin.MODEL,
        set(),
    )
    path = output.trajectory
    # The plan was stamped 20 ms before the cycle: it starts 0.4 m ahead of its stamp pose.
    assert path.times_s[0] == 0.0 and path.poses[0] == pytest.approx([4 * 2.0 + 0.4, 0, 0])
    assert path.times_s[1:] == pytest.approx(PLAN_TIMES - 0.02)
    assert path.speeds_mps == pytest.approx(20.0)


def test_lost_plans_are_held_then_stopped_within_the_fault_tolerant_time():
    drive = Drive()
    drive.cycle(3)
    drive.send_plans = False
    outputs = drive.cycle(12)
    states = [o.state for o in outputs]
    # The last plan was stamped at 0.2 s. Cycles run at stamp + 0.02 s: the plan is older than
    # plan_age_s (0.5 s) from the cycle at 0.72 s (5th) and older than plan_lost_s (1.0 s)
    # from the cycle at 1.22 s (10th): held, then a comfortable stop.
    assert states[:4] == [SafetyState.NOMINAL] * 4
    assert states[4:9] == [SafetyState.OVERRIDE] * 5
    assert all(o.origin == Origin.HELD_PLAN for o in outputs[4:9])
    assert states[9:] == [SafetyState.MINIMAL_RISK] * 3
    stop = outputs[9]
    assert stop.origin == Origin.COMFORTABLE_STOP and stop.latched
    assert stop.trajectory.speeds_mps[-1] == 0.0
    # Comfortable stop: -1.0 m/s^2 reached at 0.3 m/s^3, along the held path (y stays 0).
    assert stop.trajectory.accelerations_mps2.min() == pytest.approx(-1.0)
    jerk = np.diff(stop.trajectory.accelerations_mps2) / np.diff(stop.trajectory.times_s)
    assert np.abs(jerk).max() <= 0.3 + 1e-9
    assert stop.trajectory.poses[:, 1] == pytest.approx(0.0)


def test_obstacle_on_the_path_overrides_then_stops_and_clears_only_after_hysteresis():
    drive = Drive()
    drive.cycle(3)
    # A stalled car 60 m ahead: the front bumper (3.8 m ahead of base_link) reaches its rear
    # (57.75 m) in 2.7 s at 20 m/s, within the 3 s plan: the plan and the held plan both hit.
    drive.obstacles = boxes((drive.x + 60.0, 0, 0, 4.5, 1.8, 0, 0))
    first = drive.cycle()[0]
    assert 'collision.swept' in failing(first)
    assert first.state == SafetyState.MINIMAL_RISK  # nothing collision-free to hold
    # A comfortable stop (-1 m/s^2) from 20 m/s would still hit it: an emergency stop.
    assert 'collision.comfortable_stop' in failing(first)
    assert first.origin == Origin.EMERGENCY_STOP and first.time_to_collision_s == math.inf
    drive.obstacles = boxes()
    outputs = drive.cycle(12)
    states = [o.state for o in outputs]
    clear = MonitorConfig().machine.clear_cycles
    assert states[: clear - 1] == [SafetyState.MINIMAL_RISK] * (clear - 1)
    assert SafetyState.NOMINAL in states[clear - 1 :]


def test_a_comfortable_stop_that_would_hit_becomes_an_emergency_stop():
    drive = Drive()
    drive.cycle(3)
    drive.send_plans = False
    drive.cycle(10)  # plan lost: comfortable stop
    assert drive.outputs[-1].origin == Origin.COMFORTABLE_STOP
    drive.obstacles = boxes((drive.x + 45.0, 0, 0, 4.5, 1.8, 0, 0))
    output = drive.cycle()[0]
    assert output.origin == Origin.EMERGENCY_STOP and output.emergency
    assert 'collision.comfortable_stop' in failing(output)
    assert output.trajectory.accelerations_mps2.min() == pytest.approx(-6.0)
    # From 20 m/s, jerk-limited to -6 m/s^2: base_link stops after about 35 m, the front
    # bumper (3.8 m ahead) short of the car's rear (42.75 m, less the 2 m driven since).
    assert output.time_to_collision_s == math.inf


def test_close_lead_triggers_an_emergency_stop_by_time_to_collision():
    drive = Drive()
    drive.cycle(3)
    # Stalled car 25 m ahead: gap 25 - 3.8 - 2.25 = 18.95 m at 20 m/s closing: TTC 0.95 s.
    drive.obstacles = boxes((drive.x + 25.0, 0, 0, 4.5, 1.8, 0, 0))
    output = drive.cycle()[0]
    ttc = next(c for c in output.checks if c.rule == 'collision.ttc')
    assert ttc.verdict == Verdict.EMERGENCY and ttc.value == pytest.approx(18.95 / 20, abs=0.03)
    assert output.origin == Origin.EMERGENCY_STOP
    assert output.lead_distance_m == pytest.approx(18.95, abs=0.6)


def test_lead_inside_the_rss_distance_clamps_the_speed_to_the_rss_safe_speed():
    drive = Drive()
    drive.cycle(3)
    # A car 40 m ahead at 20 m/s: gap 40 - 3.8 - 2.25 = 33.95 m; RSS wants 65.8 m.
    drive.obstacles = boxes((drive.x + 40.0, 0, 0, 4.5, 1.8, 20, 0))
    output = drive.cycle()[0]
    assert failing(output) == {'collision.rss'}
    assert (output.state, output.origin) == (
        SafetyState.DEGRADED,
        Origin.MODEL_SPEED_CLAMPED,
    )
    # The highest speed whose RSS distance behind a 20 m/s lead is 33.95 m: with
    # u = v + rho*a_acc, u^2/8 + u - 1.75 - 25 = 33.95 gives u = 18.396, v = 14.896 m/s.
    speeds = output.trajectory.speeds_mps
    assert speeds.max() == pytest.approx(14.896, abs=1e-3)
    assert output.rss_safe_distance_m == pytest.approx(65.8, abs=0.2)


def test_a_camera_fault_degrades_the_speed_but_keeps_the_geometry():
    drive = Drive(speed_mps=30.0)
    drive.cameras = (0, 0, 2, 0, 0, 0)
    output = drive.cycle(3)[-1]
    assert output.state == SafetyState.DEGRADED and output.origin == Origin.MODEL_SPEED_CLAMPED
    path = output.trajectory
    assert path.speeds_mps.max() <= 25.0  # degraded_max_speed_mps
    # Braking at most 3.5 m/s^2 (ISO 15622) from 30 m/s to the 25 m/s cap.
    assert path.accelerations_mps2.min() >= -3.5 - 1e-9
    assert path.poses[:, 1] == pytest.approx(0.0) and np.all(np.diff(path.poses[:, 0]) > 0)


def test_the_state_does_not_flap_with_alternating_verdicts():
    drive = Drive(speed_mps=30.0)
    drive.cycle(3)
    states = []
    for index in range(8):
        drive.cameras = (0, 0, 2, 0, 0, 0) if index % 2 == 0 else (0,) * 6
        states.append(drive.cycle()[0].state)
    assert states == [SafetyState.DEGRADED] * 8


def test_non_finite_plan_is_refused_and_the_last_valid_one_held():
    drive = Drive()
    drive.cycle(3)
    drive.send_plans = False
    poses = np.column_stack([20 * PLAN_TIMES, 0 * PLAN_TIMES, 0 * PLAN_TIMES])
    poses[2, 0] = math.nan
    drive.monitor.on_plan(PlanInput(drive.t_ns, PLAN_TIMES, poses, 0.9))
    output = drive.cycle()[0]
    assert failing(output) == {'sanity.finite'}
    assert (output.state, output.origin) == (SafetyState.OVERRIDE, Origin.HELD_PLAN)
    assert np.all(np.isfinite(output.trajectory.poses))


def test_plan_at_another_speed_than_the_vehicle_fails_continuity():
    drive = Drive()
    drive.cycle(3)
    drive.plan_speed = 23.01  # 3.01 m/s faster than the vehicle: over max_speed_deviation_mps
    output = drive.cycle()[0]
    assert failing(output) == {'continuity.start'}
    assert output.origin == Origin.HELD_PLAN
    drive.plan_speed = 22.99
    assert failing(drive.cycle()[0]) == set()


def test_a_plan_braking_steadily_from_its_start_is_not_read_as_a_jerk():
    """The origin's speed is a copy of the first segment's, so its acceleration is unknown.

    Read as 0, a plan braking at 2.5 m/s^2 from its first point jumped by 2.5 m/s^2 in one
    0.5 s step (5 m/s^3, over the 4.13 limit): every yielding plan was degraded.
    """
    drive = Drive(speed_mps=10.0)
    times = np.concatenate([[0.0], PLAN_TIMES])

    def braking(rates: np.ndarray) -> PlanInput:
        speeds = 10.0 + np.concatenate([[0.0], np.cumsum(rates * 0.5)])
        stations = np.concatenate([[0.0], np.cumsum((speeds[1:] + speeds[:-1]) / 2 * 0.5)])
        poses = np.column_stack([stations[1:], np.zeros(6), np.zeros(6)])
        return lambda stamp_ns: PlanInput(stamp_ns, times[1:], poses, 0.9)

    drive.plan = braking(np.full(6, -2.5))
    assert 'kinematics.jerk' not in failing(drive.cycle(3)[-1])
    drive.plan = braking(np.array([0.0, 0.0, -4.5, -4.5, -4.5, -4.5]))  # 4.5 m/s^3 mid-plan
    assert 'kinematics.jerk' in failing(drive.cycle()[0])


GEOMETRY_RULES = {
    'sanity.relative_angle',
    'kinematics.curvature',
    'kinematics.lateral_acceleration',
    'kinematics.steering_rate',
}


def test_a_standing_cars_plan_is_not_judged_by_the_direction_of_its_jitter():
    """Points centimetres apart carry no direction (Autoware judges geometry at 1 m spacing)."""
    drive = Drive(speed_mps=0.0)
    jitter = np.column_stack([0.02 * np.arange(1, 7), 0.03 * (-1.0) ** np.arange(6), np.zeros(6)])
    raw_turns = path_turns(*_with_origin(PLAN_TIMES, jitter))
    assert np.abs(raw_turns.turn_angles_rad).max() > 2.0  # judged raw: a "sharp turn"
    drive.plan = lambda stamp_ns: PlanInput(stamp_ns, PLAN_TIMES, jitter, 0.9)
    output = drive.cycle(3)[-1]
    assert not failing(output) & GEOMETRY_RULES, failing(output)


def test_a_sharp_turn_between_points_metres_apart_is_still_refused():
    drive = Drive(speed_mps=4.0)
    drive.cycle(3)
    # Out 5.5 m, then back: a 2.6 rad turn over 1.6 m segments (2.0 rad and 1 1/m allowed).
    hairpin = np.array(
        [[2.0, 0, 0], [4.0, 0, 0], [5.5, 0.3, 0], [4.0, 0.8, 3], [2.0, 0.8, 3], [0.0, 0.8, 3]]
    )
    drive.plan = lambda stamp_ns: PlanInput(stamp_ns, PLAN_TIMES, hairpin, 0.9)
    output = drive.cycle()[0]
    assert {'kinematics.curvature', 'sanity.relative_angle'} <= failing(output)
    assert output.origin == Origin.HELD_PLAN


def _with_origin(times: np.ndarray, poses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.concatenate([[0.0], times]), np.vstack([np.zeros(3), poses])


def test_obstacles_in_base_link_are_anchored_with_the_odometry():
    drive = Drive()
    drive.cycle(3)
    stalled = boxes((25.0, 0, 0, 4.5, 1.8, -20.0, 0))  # base_link: relative position, but
    # velocity over ground: a stalled car seen from a car at 20 m/s has vx = 0 in odom.
    stalled = Obstacles(stalled.centres, stalled.yaws, stalled.sizes, np.zeros((1, 2)))
    monitor = drive.monitor
    monitor.on_odometry(EgoSample(drive.t_ns, np.array([drive.x, 0.0, 0.0]), 20.0, 0.0))
    monitor.on_plan(drive.plan(drive.t_ns))
    monitor.on_sensor_status(SensorStatusInput(drive.t_ns, drive.cameras))
    monitor.on_obstacles(ObstacleInput(drive.t_ns, stalled, in_odom=False))
    output = monitor.step(drive.t_ns + 20_000_000)
    assert output.lead_distance_m == pytest.approx(25 - 3.8 - 2.25 - 0.4, abs=0.05)


def test_time_going_backwards_forgets_the_inputs_and_stops():
    drive = Drive()
    drive.cycle(5)
    output = drive.monitor.step(0)  # the clock jumped back (a bag loop, a simulator reset)
    assert output.state == SafetyState.MINIMAL_RISK
    assert 'freshness.odometry' in failing(output)
    assert not output.in_odom  # no pose to anchor a trajectory: stop where the vehicle is


def test_missing_obstacle_source_stops_unless_not_required():
    drive = Drive()
    drive.monitor.on_odometry(EgoSample(0, np.zeros(3), 0.0, 0.0))
    drive.monitor.on_plan(drive.plan(0))
    drive.monitor.on_sensor_status(SensorStatusInput(0, (0,) * 6))
    assert 'freshness.obstacles' in failing(drive.monitor.step(10_000_000))
    relaxed = SafetyMonitor(MonitorConfig(require_obstacles=False))
    relaxed.on_odometry(EgoSample(0, np.zeros(3), 20.0, 0.0))
    relaxed.on_plan(drive.plan(0))
    relaxed.on_sensor_status(SensorStatusInput(0, (0,) * 6))
    assert failing(relaxed.step(10_000_000)) == set()


def test_unreadable_plan_message_is_refused_at_once():
    drive = Drive()
    drive.cycle(3)
    drive.send_plans = False
    drive.monitor.on_invalid_plan(drive.t_ns, 'plan has 2000000 points')
    output = drive.cycle()[0]
    assert failing(output) == {'sanity.message'}
    assert output.origin == Origin.HELD_PLAN


def test_stopped_vehicle_gets_a_standstill():
    drive = Drive(speed_mps=0.0)
    drive.send_plans = False
    output = drive.cycle(12)[-1]
    assert output.state == SafetyState.MINIMAL_RISK
    path: TimedPath = output.trajectory
    assert np.all(path.speeds_mps == 0.0) and np.all(np.diff(path.times_s) > 0)


def test_a_stop_follows_the_last_valid_path_between_its_points():
    # A 250 m radius left curve at 25 m/s (2.5 m/s^2 lateral): plan points 12.5 m apart. The
    # held plan is refused (it hits a stalled car), so the stop follows the last valid path
    # from the vehicle, which is between two of its points, 2.5 m past the nearest one.
    radius, speed = 250.0, 25.0
    monitor = SafetyMonitor()

    def on_arc(s: np.ndarray) -> np.ndarray:
        return np.column_stack([radius * np.sin(s / radius), radius * (1 - np.cos(s / radius))])

    for k in range(4):
        t_ns = k * CYCLE_NS
        s0 = speed * t_ns / NS
        monitor.on_odometry(
            EgoSample(t_ns, np.array([*on_arc(np.array([s0]))[0], s0 / radius]), speed, 0.1)
        )
        monitor.on_sensor_status(SensorStatusInput(t_ns, (0,) * 6))
        if k < 3:
            ahead = speed * PLAN_TIMES
            local = on_arc(ahead)  # the same arc seen from the vehicle
            monitor.on_plan(
                PlanInput(t_ns, PLAN_TIMES, np.column_stack([local, ahead / radius]), 0.9)
            )
        car = boxes((*on_arc(np.array([70.0]))[0], 70.0 / radius, 4.5, 1.8, 0, 0))
        monitor.on_obstacles(ObstacleInput(t_ns, car if k == 3 else boxes(), in_odom=True))
        output = monitor.step(t_ns)
    assert output.state == SafetyState.MINIMAL_RISK
    stop = output.trajectory
    along = stop.poses[10:20, :2]  # 1-2 s into the stop, 20-40 m on
    assert np.hypot(along[:, 0], along[:, 1] - radius) == pytest.approx(radius, abs=0.2)


def test_log_only_reports_what_it_would_do_but_publishes_the_model_plan():
    enforcing, logging = Drive(), Drive(config=MonitorConfig(enforce=False))
    for drive in (enforcing, logging):
        drive.cycle(3)
        drive.obstacles = boxes((drive.x + 25.0, 0, 0, 4.5, 1.8, 0, 0))  # stalled, TTC ~1 s
    stopped, reported = enforcing.cycle()[0], logging.cycle()[0]
    assert stopped.origin == Origin.EMERGENCY_STOP
    assert reported.origin == Origin.MODEL  # the model's plan, straight into the car
    assert reported.state == stopped.state and failing(reported) == failing(stopped)
    assert reported.trajectory.poses[-1, 0] > 25.0


def test_log_only_still_refuses_a_plan_that_is_not_finite():
    drive = Drive(config=MonitorConfig(enforce=False))
    drive.cycle(3)
    drive.send_plans = False
    poses = np.column_stack([20 * PLAN_TIMES, 0 * PLAN_TIMES, 0 * PLAN_TIMES])
    poses[2, 0] = math.inf
    drive.monitor.on_plan(PlanInput(drive.t_ns, PLAN_TIMES, poses, 0.9))
    output = drive.cycle()[0]
    assert output.origin == Origin.HELD_PLAN
    assert np.all(np.isfinite(output.trajectory.poses))


def test_a_stop_for_stale_odometry_starts_from_the_last_measured_speed():
    # The vehicle measures 10 m/s while the model asks for 13 (continuity holds it, DEGRADED or
    # OVERRIDE); then odometry stops. The stop starts from the measured 10 m/s, not the plan's.
    drive = Drive(speed_mps=10.0)
    drive.cycle(10)
    drive.plan_speed = 12.9
    drive.cycle(3)
    monitor, t_ns = drive.monitor, drive.t_ns
    for step in range(8):  # plans, sensors and obstacles go on; the odometry does not
        now = t_ns + step * CYCLE_NS
        monitor.on_plan(drive.plan(now))
        monitor.on_sensor_status(SensorStatusInput(now, drive.cameras))
        monitor.on_obstacles(ObstacleInput(now, drive.obstacles, in_odom=True))
        output = monitor.step(now + 20_000_000)
    assert 'freshness.odometry' in failing(output)
    assert output.state == SafetyState.MINIMAL_RISK
    assert output.trajectory.speeds_mps[0] == pytest.approx(10.0, abs=0.05)
