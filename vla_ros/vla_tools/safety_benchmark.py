"""`vla bench safety`: the cost of one safety-monitor cycle, 50 obstacles against a 40-point plan.

The ego drives along x at 25 m/s on a three-lane road; a new 40-point plan (0.1 s apart) arrives
every cycle, as at the model's best rate. Three cases, each measured over the same number of
cycles in one run: obstacles far from the path (the prefilter rejects them), obstacles in the
adjacent lanes alongside the path (every pair goes through the separating-axis test), and plans
lost (the monitor builds, and collision-checks, a stop trajectory every cycle).
"""

import os
import time
from pathlib import Path

import numpy as np

from vla_planning.collision import Obstacles
from vla_planning.safety_monitor import (
    EgoSample,
    ObstacleInput,
    PlanInput,
    SafetyMonitor,
    SensorStatusInput,
)
from vla_tools.bench_harness import summary, table_lines, write_benchmark_json

NS_PER_S = 1_000_000_000
CYCLE_NS = NS_PER_S // 10
SPEED_MPS = 25.0
OBSTACLES = 50
PLAN_POINTS = 40
WARM_UP = 20
COLUMNS = [  # (title, width, result field) of the printed table; the states reached follow
    ('case', 11, 'case'),
    ('cycle p50', 10, 'cycle_p50_ms'),
    ('p99', 7, 'cycle_p99_ms'),
    ('max', 7, 'cycle_max_ms'),
    ('step p50', 9, 'step_p50_ms'),
    ('p99', 7, 'step_p99_ms'),
]


def obstacle_layout(case: str, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Return obstacle offsets from the ego (x ahead, y left) and their speeds for a case."""
    ahead = rng.uniform(-30.0, 120.0, OBSTACLES)
    if case == 'far':
        lateral = rng.choice([-1.0, 1.0], OBSTACLES) * rng.uniform(15.0, 60.0, OBSTACLES)
    else:  # adjacent lanes, 3.5 m either side, moving with the ego
        lateral = rng.choice([-3.5, 3.5], OBSTACLES) + rng.uniform(-0.3, 0.3, OBSTACLES)
    return np.column_stack([ahead, lateral]), np.full(OBSTACLES, SPEED_MPS)


def measure(case: str, cycles: int, seed: int = 0) -> dict:
    """Run `cycles` monitor cycles of one case; return per-cycle times in ms (p50/p99/max)."""
    rng = np.random.default_rng(seed)
    offsets, speeds = obstacle_layout('far' if case == 'far' else 'adjacent', rng)
    times = np.arange(1, PLAN_POINTS + 1) * 0.1
    plan_poses = np.column_stack([SPEED_MPS * times, np.zeros_like(times), np.zeros_like(times)])
    monitor = SafetyMonitor()
    cycle_ms, step_ms, states = [], [], set()
    for index in range(cycles + WARM_UP):
        stamp = index * CYCLE_NS
        x = SPEED_MPS * stamp / NS_PER_S
        obstacles = Obstacles(
            offsets + [x, 0.0],
            np.zeros(OBSTACLES),
            np.tile([4.5, 1.8], (OBSTACLES, 1)),
            np.column_stack([speeds, np.zeros(OBSTACLES)]),
        )
        monitor.on_odometry(EgoSample(stamp, np.array([x, 0.0, 0.0]), SPEED_MPS, 0.0))
        monitor.on_sensor_status(SensorStatusInput(stamp, (0,) * 6))
        monitor.on_obstacles(ObstacleInput(stamp, obstacles, in_odom=True))
        start = time.perf_counter()
        if case != 'plans_lost' or index < WARM_UP // 2:
            monitor.on_plan(PlanInput(stamp, times, plan_poses, 0.9))
        stepped = time.perf_counter()
        output = monitor.step(stamp + 20_000_000)
        done = time.perf_counter()
        if index >= WARM_UP:
            cycle_ms.append((done - start) * 1e3)
            step_ms.append((done - stepped) * 1e3)
            states.add(f'{output.state.name}/{output.origin.name}')
    return {
        'case': case,
        'cycles': cycles,
        'states': sorted(states),
        **summary(cycle_ms, 3, ('p50', 'p99', 'max'), 'cycle_{}_ms'),
        **summary(step_ms, 3, ('p50', 'p99'), 'step_{}_ms'),
    }


def run(cycles: int, json_path: Path | None) -> list[dict]:
    """Measure every case, print a table, write JSON if asked."""
    print(
        f'{OBSTACLES} obstacles, {PLAN_POINTS}-point plan, {cycles} cycles per case after '
        f'{WARM_UP} warm-up; one process, {os.cpu_count()} CPUs; a cycle = judging a new plan '
        '+ the step; goal p99 <= 1 ms'
    )
    results = [measure(case, cycles) for case in ('far', 'adjacent', 'plans_lost')]
    lines = table_lines(
        [(title, width) for title, width, _ in COLUMNS],
        ([r[field] for *_, field in COLUMNS] for r in results),
    )
    states = ['states', *(', '.join(r['states']) for r in results)]
    for line, reached in zip(lines, states, strict=True):
        print(f'{line}  {reached}')
    if json_path is not None:
        write_benchmark_json(json_path, 'safety', results)
    return results
