"""Closed-loop episode metrics: safety, progress, comfort, instruction success, interventions.

Judged from the simulator's ground truth, whichever driver drove (the expert or the pipeline), so
the two are measured the same way. Lane numbers follow highway-env's road network: 0 is the
leftmost lane, numbers grow to the right, and a road's continuation keeps the numbering.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass, field

import numpy as np

from vla_sim.instructions import InstructionSample, Intent
from vla_sim.world import World

STOPPED_MPS = 0.5
SET_SPEED_TOLERANCE_MPS = 1.5  # judged on the mean speed of the last SET_SPEED_WINDOW_S
SET_SPEED_WINDOW_S = 5.0
STOP_BEHIND_GAP_M = (1.0, 20.0)  # bumper gap to the lead that counts as "stopped behind it"
MIN_MEAN_SPEED_MPS = 2.0  # a KEEP_LANE episode that barely moved did not follow the road


@dataclass(frozen=True)
class StepRecord:
    """What one control period looked like."""

    time_s: float
    speed_mps: float
    acceleration_mps2: float
    yaw_rate_rps: float
    lane_index: tuple[str, str, int]
    wall_ms: float
    safety_state: str = ''  # the monitor's state; empty when no monitor ran (the expert)
    failed_rules: tuple[str, ...] = ()  # the monitor's rules that did not pass


@dataclass(frozen=True)
class EpisodeMetrics:
    """The metrics of one episode."""

    scenario: str
    seed: int
    driver: str
    intent: str
    instruction: str
    steps: int
    duration_s: float
    collision: bool
    off_road: bool
    progress_m: float
    mean_speed_mps: float
    peak_jerk_mps3: float
    peak_lateral_acceleration_mps2: float
    instruction_success: bool
    interventions: int  # the monitor leaving NOMINAL
    minimal_risk_stops: int  # the monitor entering MINIMAL_RISK
    mean_step_wall_ms: float
    p99_step_wall_ms: float
    failed_rule_cycles: dict[str, int] = field(default_factory=dict)  # rule: cycles it failed

    def as_dict(self) -> dict:
        """Plain types, for JSON."""
        return asdict(self)


@dataclass
class EpisodeLog:
    """Collects an episode's steps and judges it at the end."""

    scenario: str
    seed: int
    driver: str
    instruction: InstructionSample
    world: World
    records: list[StepRecord] = field(default_factory=list)
    distance_m: float = 0.0
    visited: set = field(default_factory=set)
    left_road: bool = False

    def __post_init__(self) -> None:
        route = list(getattr(self.world.ego, 'route', None) or [])
        self.start_lane = self.world.ego.lane_index
        self.route_goal = tuple(route[-1][:2]) if len(route) > 1 else None
        self._last_position = self.world.ego.position.copy()

    def record(
        self, wall_ms: float, safety_state: str = '', failed_rules: tuple[str, ...] = ()
    ) -> None:
        """Log the world after a step, and the monitor's state and failed rules of the cycle."""
        ego = self.world.ego
        self.distance_m += float(np.linalg.norm(ego.position - self._last_position))
        self._last_position = ego.position.copy()
        self.visited.add(tuple(ego.lane_index[:2]))
        self.left_road = self.left_road or self.world.off_road
        self.records.append(
            StepRecord(
                time_s=self.world.time_s,
                speed_mps=float(ego.speed),
                acceleration_mps2=float(ego.acceleration_mps2),
                yaw_rate_rps=float(ego.yaw_rate_rps),
                lane_index=tuple(ego.lane_index),
                wall_ms=wall_ms,
                safety_state=safety_state,
                failed_rules=failed_rules,
            )
        )

    def _lead_gap(self) -> float:
        """Bumper gap to the nearest actor ahead in the ego's lane, inf if none."""
        world, ego = self.world, self.world.ego
        lane = ego.lane
        s_ego = lane.local_coordinates(ego.position)[0]
        best = math.inf
        for other in [v for v in world.road.vehicles if v is not ego] + list(world.road.objects):
            s, lateral = lane.local_coordinates(other.position)
            if abs(lateral) < lane.width_at(s) / 2.0 and s > s_ego:
                best = min(best, s - s_ego - (ego.LENGTH + other.LENGTH) / 2.0)
        return best

    def _instruction_followed(self, mean_speed: float) -> bool:
        intent = self.instruction.intent
        ego = self.world.ego
        start, end = self.start_lane[2], ego.lane_index[2]
        if intent is Intent.TAKE_EXIT:
            return any(segment[1] == 'exit' for segment in self.visited)
        if intent is Intent.CHANGE_LANE_LEFT:
            return end == start - 1
        if intent is Intent.CHANGE_LANE_RIGHT:
            return end == start + 1
        if intent is Intent.PULL_OVER:
            lanes = self.world.road.network.graph[ego.lane_index[0]][ego.lane_index[1]]
            return ego.speed < STOPPED_MPS and end == len(lanes) - 1
        if intent is Intent.STOP_BEHIND_LEAD:
            low, high = STOP_BEHIND_GAP_M
            return ego.speed < STOPPED_MPS and low <= self._lead_gap() <= high
        if intent is Intent.SET_SPEED:
            window = [
                r.speed_mps
                for r in self.records
                if r.time_s > self.world.time_s - SET_SPEED_WINDOW_S
            ]
            target = self.instruction.target_speed_mps or 0.0
            return abs(float(np.mean(window)) - target) <= SET_SPEED_TOLERANCE_MPS
        if self.route_goal is not None:
            return self.route_goal in self.visited
        stranded = ego.speed < STOPPED_MPS and self._lead_gap() > STOP_BEHIND_GAP_M[1]
        return end == start and mean_speed >= MIN_MEAN_SPEED_MPS and not stranded

    def finish(self) -> EpisodeMetrics:
        """Judge the episode."""
        records = self.records
        duration = records[-1].time_s if records else 0.0
        speeds = np.array([r.speed_mps for r in records]) if records else np.zeros(1)
        accelerations = (
            np.array([r.acceleration_mps2 for r in records]) if records else np.zeros(1)
        )
        times = np.array([r.time_s for r in records]) if records else np.zeros(1)
        jerks = (
            np.diff(accelerations) / np.maximum(np.diff(times), 1e-6) if len(records) > 1 else [0]
        )
        lateral = speeds * np.array([r.yaw_rate_rps for r in records]) if records else np.zeros(1)
        walls = np.array([r.wall_ms for r in records]) if records else np.zeros(1)
        states = [r.safety_state for r in records]
        interventions = sum(
            1
            for a, b in zip(['NOMINAL'] + states, states, strict=False)
            if b and a == 'NOMINAL' and b != 'NOMINAL'
        )
        stops = sum(
            1
            for a, b in zip([''] + states, states, strict=False)
            if b == 'MINIMAL_RISK' and a != b
        )
        collision, off_road = self.world.collided, self.left_road
        mean_speed = float(np.mean(speeds))
        success = not collision and not off_road and self._instruction_followed(mean_speed)
        return EpisodeMetrics(
            scenario=self.scenario,
            seed=self.seed,
            driver=self.driver,
            intent=self.instruction.intent.value,
            instruction=self.instruction.text,
            steps=len(records),
            duration_s=float(duration),
            collision=bool(collision),
            off_road=bool(off_road),
            progress_m=self.distance_m,
            mean_speed_mps=mean_speed,
            peak_jerk_mps3=float(np.max(np.abs(jerks))),
            peak_lateral_acceleration_mps2=float(np.max(np.abs(lateral))),
            instruction_success=bool(success),
            interventions=interventions,
            minimal_risk_stops=stops,
            mean_step_wall_ms=float(np.mean(walls)),
            p99_step_wall_ms=float(np.percentile(walls, 99)),
            failed_rule_cycles=dict(Counter(rule for r in records for rule in r.failed_rules)),
        )


def summarise(episodes: list[EpisodeMetrics], by: str = 'scenario') -> dict:
    """Aggregate per scenario: rates, means, peaks and per-km counts.

    `by` groups by another EpisodeMetrics field instead, e.g. 'intent'.
    """
    summary: dict[str, dict] = {}
    for name in sorted({getattr(e, by) for e in episodes}):
        group = [e for e in episodes if getattr(e, by) == name]
        km = max(sum(e.progress_m for e in group) / 1000.0, 1e-9)
        summary[name] = {
            'episodes': len(group),
            'collision_rate': float(np.mean([e.collision for e in group])),
            'off_road_rate': float(np.mean([e.off_road for e in group])),
            'instruction_success_rate': float(np.mean([e.instruction_success for e in group])),
            'mean_progress_m': float(np.mean([e.progress_m for e in group])),
            'mean_speed_mps': float(np.mean([e.mean_speed_mps for e in group])),
            'peak_jerk_mps3': float(np.max([e.peak_jerk_mps3 for e in group])),
            'peak_lateral_acceleration_mps2': float(
                np.max([e.peak_lateral_acceleration_mps2 for e in group])
            ),
            'interventions_per_km': sum(e.interventions for e in group) / km,
            'minimal_risk_stops_per_km': sum(e.minimal_risk_stops for e in group) / km,
            'mean_step_wall_ms': float(np.mean([e.mean_step_wall_ms for e in group])),
            'failed_rule_cycles': dict(
                sum((Counter(e.failed_rule_cycles) for e in group), Counter()).most_common()
            ),
        }
    return summary
