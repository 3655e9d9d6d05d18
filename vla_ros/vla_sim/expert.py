"""The privileged expert: drives the ego from ground truth, following a structured instruction.

It is the teacher the model learns from, so it must be safe and legible rather than fast:
- Longitudinal: the Intelligent Driver Model (Treiber et al. 2000) against the nearest actor
  whose footprint lies in the ego's path ahead (the path follows the route through junctions,
  unlike highway-env's own IDM, which only looks along the current lane segment), limited on
  curves by a lateral-acceleration bound. Above its desired speed it slows by the improved
  IDM's free-road term, at most `comfort_deceleration_mps2` (Treiber and Kesting, Traffic Flow
  Dynamics, 2013, sec. 11.3.6), not IDM's, which brakes at its limit when the desired speed
  halves. Curves farther ahead, stop lines and a road's end are approached by
  `approach_acceleration`, braking at the constant deceleration that reaches them in time.
- Yielding: other vehicles are predicted along their own routes at constant speed; where one
  reaches the ego's path before the ego has cleared it (with a time margin), the junction entry
  (or the point where the paths meet) becomes a stop line. A line it could only stop at harder
  than `yield_deceleration_mps2` is passed (Autoware's intersection "pass judge line"), so
  that its plans, the labels the model learns, pass the safety monitor's braking limit.
- Lateral: pure pursuit from the rear axle towards the target lane's centre-line.
- Lane changes (instructed, to reach an exit, to pull over, or around a stopped obstacle under
  a new speed; see `_wanted_lane_change`) are taken only when MOBIL's safety criterion holds
  (Kesting et al. 2007): the new follower would not have to brake harder than
  `safe_braking_mps2`, with minimum gaps front and back.
It outputs the command and the rationale label of what it is doing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from highway_env.vehicle.kinematics import Vehicle
from highway_env.vehicle.objects import RoadObject

from vla_model.config import RATIONALES
from vla_sim.instructions import InstructionSample, Intent
from vla_sim.route_paths import (
    arc_lengths,
    curvature_ahead,
    locate_on_path,
    path_ahead,
    route_from,
)
from vla_sim.world import EGO_SHAPE, EgoVehicle, Pedestrian, VehicleCommand, World


@dataclass(frozen=True)
class ExpertConfig:
    """IDM/MOBIL parameters and driving limits. Sources in brackets."""

    time_gap_s: float = 1.5  # IDM desired time headway [Treiber et al.: 1.5 s]
    min_gap_m: float = 4.0  # IDM jam distance s0, bumper to bumper [highway-env: 5 m incl. margin]
    # IDM a [Treiber: 1.0-1.5 m/s^2]; below the safety monitor's 2.0 (ISO 15622 ACC) with margin,
    # so a plan learned from the expert's driving passes the monitor it is judged by.
    max_acceleration_mps2: float = 1.5
    comfort_deceleration_mps2: float = 2.0  # IDM b [Treiber: 1.5-2.0]
    max_deceleration_mps2: float = 7.0  # the most the expert brakes (below the 8 m/s^2 tyres)
    # The most it brakes to yield, and beyond which a stop line is passed: below the safety
    # monitor's -3.5 m/s^2 [ISO 15622 ACC] with margin, so yielding plans pass it.
    yield_deceleration_mps2: float = 3.0
    delta: float = 4.0  # IDM acceleration exponent [Treiber: 4]
    max_lateral_acceleration_mps2: float = 2.0  # speed on curves [comfort, ISO 22179: 2.0]
    lookahead_time_s: float = 0.9  # pure-pursuit lookahead = time * speed + minimum
    min_lookahead_m: float = 5.0
    path_length_m: float = 90.0
    safe_braking_mps2: float = 3.0  # MOBIL b_safe [Kesting et al.: 4; stricter here]
    lane_change_gap_m: float = 6.0  # minimum bumper gap to the new leader and follower
    yield_margin_s: float = 2.0  # the ego must clear a crossing path this long before another
    prediction_horizon_s: float = 6.0
    stop_gap_m: float = 5.0  # STOP_BEHIND_LEAD and stop lines: gap left ahead of the bumper
    pull_over_deceleration_mps2: float = 2.0  # [ISO 15622 ACC comfort: 2.0 m/s^2]
    max_steering_rate_rps: float = 0.5  # [Autoware vehicle_cmd_gate steer_rate_lim: 1.0, halved]
    # Below the safety monitor's 4.13 [nuPlan comfort] [Autoware vehicle_cmd_gate: 5.0 m/s^3].
    max_jerk_mps3: float = 4.0
    emergency_jerk_mps3: float = 20.0  # braking harder than yielding would [Autoware MRM]


@dataclass(frozen=True)
class ExpertDecision:
    """The expert's command, what it is doing, and why."""

    command: VehicleCommand
    rationale: int  # index into vla_model.config.RATIONALES
    target_speed_mps: float
    lead_gap_m: float  # bumper gap to the actor in the path ahead (inf: none)
    path_world: np.ndarray  # (N, 2) the centre-line it follows, world frame (REP 103)

    @property
    def rationale_text(self) -> str:
        """The rationale as the model's vocabulary says it."""
        return RATIONALES[self.rationale]


CUT_IN_LOOKAHEAD_S = 1.0
"""An actor whose heading takes it into the ego's path within this time is already a lead."""
CUT_IN_MAX_ANGLE_RAD = 0.6
"""Within this angle of the path an actor entering it cuts in; beyond it, it crosses."""
CURVE_BRAKING_FROM_M = 5.0
"""Curves nearer than this are left to the desired speed; farther ones are braked for in time."""
JUNCTION_LANE_M = 40.0
"""Lanes shorter than this, after the first of the route, are inside a junction or a ring."""
JUNCTION_ENTRY_MARGIN_M = 1.0
"""Yielding stops this far before the lane that enters a junction."""
RATIONALE = {text: index for index, text in enumerate(RATIONALES)}


def idm_acceleration(
    config: ExpertConfig, speed: float, desired: float, gap: float, closing: float
) -> float:
    """IDM acceleration for a speed, a desired speed, a bumper gap and a closing speed."""
    speed, desired = max(speed, 0.0), max(desired, 0.1)
    if speed > desired:  # improved IDM: slow down to the desired speed at most at b
        exponent = config.max_acceleration_mps2 * config.delta / config.comfort_deceleration_mps2
        free = (
            -config.comfort_deceleration_mps2
            / config.max_acceleration_mps2
            * (1.0 - (desired / speed) ** exponent)
        )
    else:
        free = 1.0 - (speed / desired) ** config.delta
    if not math.isfinite(gap):
        return config.max_acceleration_mps2 * free
    s_star = (
        config.min_gap_m
        + max(0.0, speed * config.time_gap_s)
        + speed
        * closing
        / (2.0 * math.sqrt(config.max_acceleration_mps2 * config.comfort_deceleration_mps2))
    )
    interaction = (max(s_star, 0.0) / max(gap, 0.1)) ** 2
    return config.max_acceleration_mps2 * (free - interaction)


def approach_acceleration(
    config: ExpertConfig, speed: float, target_speed: float, distance: float
) -> float:
    """Acceleration towards a speed to be had `distance` ahead (0 at a stop line).

    Braking sets in as the constant deceleration that reaches the target there grows from half
    of `comfort_deceleration_mps2` to all of it, and is that deceleration beyond; before, the car
    accelerates towards the speed from which comfortable braking still reaches the target. The
    blend is continuous, so a car on the braking curve does not alternate between coasting and
    braking from one period to the next. (IDM would brake at its limit for such a point found
    close ahead: by its desired gap to a stop line, by its free-road term above a curve's speed.)
    """
    distance = max(distance, 0.0)
    comfort = config.comfort_deceleration_mps2
    approach = math.sqrt(target_speed**2 + 2.0 * comfort * distance)
    free = config.max_acceleration_mps2 * max(1.0 - speed / max(approach, 0.1), 0.0)
    if speed <= target_speed:
        return free
    needed = (speed**2 - target_speed**2) / (2.0 * max(distance, 0.05))
    weight = min(max((needed - 0.25 * comfort) / (0.25 * comfort), 0.0), 1.0)
    return (1.0 - weight) * free - weight * needed


class Expert:
    """Drives one World's ego; call `step()` once per control period."""

    def __init__(
        self,
        world: World,
        instruction: InstructionSample,
        config: ExpertConfig | None = None,
        period_s: float = 0.1,
    ) -> None:
        self.world = world
        self.period_s = period_s
        self.last_command = VehicleCommand()
        self.instruction = instruction
        self.config = config or ExpertConfig()
        ego = world.ego
        self.home_lane = ego.lane_index
        self.lane_change_done = False
        self.stopped = False
        if instruction.intent is Intent.TAKE_EXIT and 'exit' in world.road.network.graph.get(
            '2', {}
        ):
            ego.route = [ego.lane_index, ('1', '2', None), ('2', 'exit', 0)]

    @property
    def ego(self) -> EgoVehicle:
        """The vehicle driven."""
        return self.world.ego

    def _speed_limit(self) -> float:
        lane = self.world.lane(self.ego.target_lane_index)
        return float(lane.speed_limit or 30.0)

    def _desired_speed(self) -> float:
        intent = self.instruction.intent
        limit = self._speed_limit()
        if intent is Intent.SET_SPEED and self.instruction.target_speed_mps is not None:
            return min(limit, self.instruction.target_speed_mps)
        return limit

    def _path(self) -> np.ndarray:
        ego = self.ego
        return path_ahead(
            self.world.road.network,
            ego.target_lane_index,
            ego.position,
            ego.route,
            self.config.path_length_m,
        )

    def _others(self) -> list[RoadObject]:
        road = self.world.road
        return [v for v in road.vehicles if v is not self.ego] + list(road.objects)

    def _lead(self, path: np.ndarray, arcs: np.ndarray) -> tuple[float, float, RoadObject | None]:
        """Bumper gap, speed along the path and identity of the nearest actor in the path."""
        others = [
            o for o in self._others() if np.linalg.norm(o.position - self.ego.position) < 120
        ]
        if not others:
            return math.inf, 0.0, None
        centres = np.array([o.position for o in others])
        along, lateral_now = locate_on_path(path, arcs, centres)
        # Anticipate cut-ins: where each actor will be after CUT_IN_LOOKAHEAD_S at its heading.
        motion = np.array([o.speed * o.direction for o in others])
        _, lateral_soon = locate_on_path(path, arcs, centres + CUT_IN_LOOKAHEAD_S * motion)
        ego_front = self.ego.LENGTH / 2.0
        best = (math.inf, 0.0, None)
        for other, s, now, soon in zip(others, along, lateral_now, lateral_soon, strict=True):
            relative = other.heading - self._path_heading(path, s, arcs)
            # One about to cross our path is yielded to, not followed: only an actor heading
            # our way cuts in as a lead.
            cutting_in = abs(math.cos(relative)) > math.cos(CUT_IN_MAX_ANGLE_RAD)
            d = min(now, soon) if cutting_in else now
            extent = abs(other.LENGTH / 2.0 * math.sin(relative)) + abs(
                other.WIDTH / 2.0 * math.cos(relative)
            )
            half_width = extent + self.ego.WIDTH / 2.0 + 0.3
            behind_start = s <= 0.0 and np.linalg.norm(other.position - path[0]) > other.LENGTH
            if d > half_width or behind_start:
                continue
            gap = s - ego_front - other.LENGTH / 2.0
            if gap < -other.LENGTH - self.ego.LENGTH:
                continue
            if gap < best[0]:
                speed = float(other.speed * math.cos(relative))
                if not cutting_in:  # crossing in front: it leaves our path, it does not come at us
                    speed = max(speed, 0.0)
                best = (gap, speed, other)
        return best

    @staticmethod
    def _path_heading(path: np.ndarray, arc: float, arcs: np.ndarray) -> float:
        index = int(np.clip(np.searchsorted(arcs, arc), 1, len(path) - 1))
        delta = path[index] - path[index - 1]
        return math.atan2(delta[1], delta[0])

    def _yield_gap(self, path: np.ndarray, arcs: np.ndarray, lead: RoadObject | None) -> float:
        """Return the gap to where a crossing road user's predicted path first meets ours.

        Only when the ego would not clear that point `yield_margin_s` before it arrives; inf
        when there is no such point.
        """
        config = self.config
        ego = self.ego
        if self._inside_junction():
            return math.inf  # stopping inside would block crossing traffic: clear it
        times = np.arange(0.0, config.prediction_horizon_s + 1e-9, 0.25)
        best = math.inf
        road = self.world.road
        for other in road.vehicles + [o for o in road.objects if isinstance(o, Pedestrian)]:
            if other is ego or other is lead:
                continue
            if np.linalg.norm(other.position - ego.position) > 80.0 or other.speed < 0.5:
                continue  # far, or standing: a standing vehicle in the path is a lead
            heading_gap = abs((other.heading - ego.heading + math.pi) % (2 * math.pi) - math.pi)
            if heading_gap < 0.35:
                continue  # same direction: handled by following and lane-change checks
            positions = self._predict(other, times)
            if positions is None:
                continue
            along, lateral = locate_on_path(path, arcs, positions)
            inside = lateral < (other.WIDTH + ego.WIDTH) / 2.0 + 0.8
            if not np.any(inside):
                continue
            first = int(np.argmax(inside))
            conflict_arc = float(along[first])
            if first + 1 < len(positions):
                motion = positions[first + 1] - positions[first]
                along_path = self._path_heading(path, conflict_arc, arcs)
                turn = math.atan2(motion[1], motion[0]) - along_path
                if abs((turn + math.pi) % (2 * math.pi) - math.pi) < 0.5 and first == 0:
                    continue  # already on our path and driving along it: one to follow
            their_arrival = float(times[first])
            if conflict_arc <= ego.LENGTH / 2.0:
                continue  # they come at us from the side we already occupy: keep going
            our_clear = self._travel_time(conflict_arc + ego.LENGTH + other.LENGTH + 2.0)
            if our_clear + config.yield_margin_s <= their_arrival:
                continue
            gap = conflict_arc - ego.LENGTH / 2.0 - (other.WIDTH / 2.0 + 2.0)
            if ego.speed**2 > 2.0 * config.yield_deceleration_mps2 * max(gap, 0.0):
                continue  # past the pass judge line: stopping would leave us in its path
            best = min(best, max(gap, 0.0))
        entry = self._junction_entry_gap()
        stopping = ego.speed**2 / (2.0 * config.yield_deceleration_mps2)
        if math.isfinite(best) and stopping <= entry + JUNCTION_ENTRY_MARGIN_M:
            best = min(best, entry)  # wait before the junction while that takes no harder braking
        return best

    def _predict(self, other: RoadObject, times: np.ndarray) -> np.ndarray | None:
        """Predict another road user's positions at `times`, at constant speed.

        Vehicles move along their route, pedestrians in a straight line.
        """
        if not isinstance(other, Vehicle):
            return other.position + other.speed * times[:, None] * other.direction
        try:
            predicted = path_ahead(
                self.world.road.network,
                other.lane_index,
                other.position,
                getattr(other, 'route', None),
                max(other.speed, 1.0) * self.config.prediction_horizon_s + 5.0,
            )
        except (KeyError, IndexError, ValueError):
            return None
        their_arcs = arc_lengths(predicted)
        return np.column_stack(
            [
                np.interp(other.speed * times, their_arcs, predicted[:, 0]),
                np.interp(other.speed * times, their_arcs, predicted[:, 1]),
            ]
        )

    def _junction_entry_gap(self) -> float:
        """Bumper distance to where the route enters a junction (a short connector); inf if none.

        Yielding stops there, so that waiting never leaves the ego inside a crossing.
        """
        ego = self.ego
        network = self.world.road.network
        lane = self.world.lane(ego.lane_index)
        longitudinal, _ = lane.local_coordinates(ego.position)
        to_end = float(lane.length - longitudinal - ego.LENGTH / 2.0)
        pending = route_from(ego.route, ego.lane_index)
        try:
            following = network.next_lane(ego.lane_index, route=pending, position=ego.position)
        except (KeyError, IndexError, ValueError):
            return math.inf
        if (
            following[:2] == ego.lane_index[:2]
            or network.get_lane(following).length >= JUNCTION_LANE_M
        ):
            return math.inf
        return max(to_end - JUNCTION_ENTRY_MARGIN_M, 0.0)

    def _travel_time(self, distance: float) -> float:
        """Time to cover a distance from the current speed, accelerating at IDM's a."""
        speed, rate = self.ego.speed, self.config.max_acceleration_mps2
        accelerating = (math.sqrt(speed * speed + 2.0 * rate * distance) - speed) / rate
        return max(accelerating, distance / max(self._desired_speed(), 1.0))

    def _inside_junction(self) -> bool:
        """Whether the ego is on a short connector of its route (a junction or a ring segment)."""
        ego = self.ego
        short = self.world.lane(ego.lane_index).length < JUNCTION_LANE_M
        return short and ego.lane_index[:2] != self.home_lane[:2]

    def _gap_is_safe(self, lane_index: tuple[str, str, int]) -> bool:
        """MOBIL's safety criterion plus minimum gaps in a neighbouring lane."""
        road, ego, config = self.world.road, self.ego, self.config
        front, rear = road.neighbour_vehicles(ego, lane_index)
        lane = self.world.lane(lane_index)
        s_ego = lane.local_coordinates(ego.position)[0]
        if front is not None:
            gap = (
                lane.local_coordinates(front.position)[0] - s_ego - (front.LENGTH + ego.LENGTH) / 2
            )
            if gap < config.lane_change_gap_m + 0.5 * max(0.0, ego.speed - front.speed) * 2.0:
                return False
        if rear is not None:
            gap = s_ego - lane.local_coordinates(rear.position)[0] - (rear.LENGTH + ego.LENGTH) / 2
            if gap < config.lane_change_gap_m:
                return False
            closing = rear.speed - ego.speed
            braking = idm_acceleration(config, rear.speed, max(rear.speed, 1.0), gap, closing)
            if braking < -config.safe_braking_mps2:
                return False
        return True

    def _side_lane(self, direction: int) -> tuple[str, str, int] | None:
        start, end, number = self.ego.target_lane_index
        candidate = number + direction
        lanes = self.world.road.network.graph[start][end]
        if 0 <= candidate < len(lanes):
            return start, end, candidate
        return None

    def _wanted_lane_change(self, lead_speed: float, lead_gap: float) -> int:
        """-1 (left, highway-env's lower lane numbers), +1 (right) or 0.

        A lane blocked by a stopped lead is passed only when the instruction leaves the lane
        free (a new speed). "Keep the lane", "follow the lead", "stop behind the lead" and a lane
        change already made bind the ego to its lane, so it stops behind the obstacle, as the
        metric judges them (`vla_sim.metrics`) and as a passenger who said "no lane changes"
        expects.
        """
        intent = self.instruction.intent
        ego = self.ego
        if ego.lane_index != ego.target_lane_index:
            return 0  # a change is in progress
        if intent is Intent.CHANGE_LANE_LEFT and not self.lane_change_done:
            return -1
        if intent is Intent.CHANGE_LANE_RIGHT and not self.lane_change_done:
            return 1
        if intent in (Intent.PULL_OVER, Intent.TAKE_EXIT):
            return 1
        blocked = lead_gap < 60.0 and lead_speed < 1.0
        if blocked and intent is Intent.SET_SPEED:
            return -1 if self._side_lane(-1) else 1
        return 0

    def step(self) -> ExpertDecision:
        """Decide the command for the next control period."""
        config, ego = self.config, self.ego
        ego.follow_road()
        path = self._path()
        arcs = arc_lengths(path)
        lead_gap, lead_speed, lead = self._lead(path, arcs)

        change = self._wanted_lane_change(lead_speed, lead_gap)
        changing = 0
        if change:
            target = self._side_lane(change)
            if target is not None and self._gap_is_safe(target):
                ego.target_lane_index = target
                self.lane_change_done = self.instruction.intent in (
                    Intent.CHANGE_LANE_LEFT,
                    Intent.CHANGE_LANE_RIGHT,
                )
                changing = change
                path = self._path()
                arcs = arc_lengths(path)
                lead_gap, lead_speed, lead = self._lead(path, arcs)
        if ego.lane_index != ego.target_lane_index:
            changing = ego.target_lane_index[2] - ego.lane_index[2]

        desired = self._desired_speed()
        curve_speeds = np.sqrt(
            config.max_lateral_acceleration_mps2 / np.maximum(curvature_ahead(path, arcs), 1e-4)
        )
        reach = arcs <= max(30.0, ego.speed * 3.0)
        if np.any(reach):
            desired = min(desired, float(np.min(curve_speeds[reach])))

        stop_requested = self._stop_requested()
        if stop_requested and self.instruction.intent is Intent.STOP_BEHIND_LEAD:
            lead_speed = 0.0  # the lead is where to stop, whatever it does
        acceleration = idm_acceleration(
            config, ego.speed, desired, lead_gap, ego.speed - lead_speed
        )
        for arc, curve_speed in zip(arcs, curve_speeds, strict=True):
            if curve_speed < ego.speed and arc > CURVE_BRAKING_FROM_M:  # brake for it in time
                acceleration = min(
                    acceleration, approach_acceleration(config, ego.speed, curve_speed, arc)
                )
        if arcs[-1] < config.path_length_m - 1.0:  # the road ends ahead: stop before its end
            acceleration = min(
                acceleration,
                approach_acceleration(config, ego.speed, 0.0, arcs[-1] - config.stop_gap_m),
            )
        yield_gap = self._yield_gap(path, arcs, lead)
        yielding = False
        if math.isfinite(yield_gap):
            yield_acceleration = approach_acceleration(config, ego.speed, 0.0, yield_gap)
            if yield_acceleration < acceleration:
                acceleration, yielding = yield_acceleration, True
        if stop_requested and self.instruction.intent is Intent.PULL_OVER:
            braking = -config.pull_over_deceleration_mps2 if ego.speed > 0.0 else 0.0
            acceleration = min(acceleration, braking)
        if ego.speed < 0.05 and acceleration < 0.0:
            acceleration = 0.0 if stop_requested or lead_gap < 15.0 or yielding else acceleration
        acceleration = float(
            np.clip(acceleration, -config.max_deceleration_mps2, config.max_acceleration_mps2)
        )

        command = self._rate_limited(self._pure_pursuit(path, arcs), acceleration)
        rationale = self._rationale(
            changing, lead_gap, lead_speed, command.acceleration_mps2, yielding, desired
        )
        self.last_command = command
        return ExpertDecision(
            command=command,
            rationale=rationale,
            target_speed_mps=desired,
            lead_gap_m=lead_gap,
            path_world=path * np.array([1.0, -1.0]),
        )

    def _rate_limited(self, steering: float, acceleration: float) -> VehicleCommand:
        """Bound steering rate and jerk: the teacher drives as smoothly as it asks the student.

        Braking harder than comfort may change faster.
        """
        config, last, dt = self.config, self.last_command, self.period_s
        step = config.max_steering_rate_rps * dt
        previous = last.steering_tire_angle_rad
        steering = float(np.clip(steering, previous - step, previous + step))
        urgent = acceleration < -config.yield_deceleration_mps2
        jerk = (config.emergency_jerk_mps3 if urgent else config.max_jerk_mps3) * dt
        previous = last.acceleration_mps2
        acceleration = float(np.clip(acceleration, previous - jerk, previous + jerk))
        return VehicleCommand(steering_tire_angle_rad=steering, acceleration_mps2=acceleration)

    def _stop_requested(self) -> bool:
        intent = self.instruction.intent
        if intent is Intent.PULL_OVER:
            start, end, number = self.ego.lane_index
            rightmost = len(self.world.road.network.graph[start][end]) - 1
            return number == rightmost and self.ego.target_lane_index == self.ego.lane_index
        return intent is Intent.STOP_BEHIND_LEAD

    def _pure_pursuit(self, path: np.ndarray, arcs: np.ndarray) -> float:
        """Steering tire angle (REP 103 sign) towards the path point one lookahead ahead."""
        ego, config = self.ego, self.config
        rear = ego.position - ego.CENTRE_FROM_REAR_AXLE_M * ego.direction
        lookahead = config.min_lookahead_m + config.lookahead_time_s * ego.speed
        along, _ = locate_on_path(path, arcs, rear[None, :])
        target_arc = float(along[0]) + lookahead
        target = np.array(
            [np.interp(target_arc, arcs, path[:, 0]), np.interp(target_arc, arcs, path[:, 1])]
        )
        if target_arc > arcs[-1] and len(path) >= 2:
            direction = path[-1] - path[-2]
            direction = direction / max(np.linalg.norm(direction), 1e-9)
            target = path[-1] + (target_arc - arcs[-1]) * direction
        delta = target - rear
        alpha = math.atan2(delta[1], delta[0]) - ego.heading
        distance = max(float(np.linalg.norm(delta)), 1e-3)
        steering_hw = math.atan2(2.0 * EGO_SHAPE.wheelbase_m * math.sin(alpha), distance)
        # Lateral acceleration v^2 tan(delta) / L stays within the comfort bound.
        bound = math.atan(
            config.max_lateral_acceleration_mps2 * EGO_SHAPE.wheelbase_m / max(ego.speed, 1.0) ** 2
        )
        return -float(np.clip(steering_hw, -bound, bound))

    def _rationale(
        self,
        changing: int,
        lead_gap: float,
        lead_speed: float,
        acceleration: float,
        yielding: bool,
        desired: float,
    ) -> int:
        intent = self.instruction.intent
        ego = self.ego
        if changing and intent is Intent.TAKE_EXIT:
            return RATIONALE['taking the exit']
        if changing < 0:
            return RATIONALE['changing lane to the left']
        if changing > 0:
            return RATIONALE['changing lane to the right']
        if intent is Intent.TAKE_EXIT and ego.lane_index[1] == 'exit':
            return RATIONALE['taking the exit']
        if lead_gap < 40.0 and lead_speed < 1.0 and acceleration < 0.0:
            return RATIONALE['stopping for an obstacle in the lane']
        if yielding or (acceleration < -1.5 and lead_gap < 60.0):
            return RATIONALE['slowing down for traffic ahead']
        if lead_gap < max(20.0, 3.0 * ego.speed):
            return RATIONALE['following the vehicle ahead']
        if intent is Intent.SET_SPEED and abs(ego.speed - desired) > 1.0:
            return RATIONALE['adjusting speed as instructed']
        return RATIONALE['keeping the lane']
