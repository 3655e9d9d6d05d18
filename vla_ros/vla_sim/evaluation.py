"""Closed-loop evaluation: drive seeded episodes of scenarios in lockstep and measure them.

A driver turns each simulator frame into the command for the next period. The expert driver
reads the privileged world state; every episode is judged by `vla_sim.metrics` from ground truth,
so drivers are compared on equal terms. Episodes selected for the report keep their frames
(camera views, BEV ground truth, the driver's path) for the video.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from vla_perception.rig import RigConfig
from vla_sim.instructions import Split
from vla_sim.metrics import EpisodeLog, EpisodeMetrics, summarise
from vla_sim.scenarios import get_scenario
from vla_sim.simulation import SimConfig, SimFrame, SimulationCore
from vla_sim.world import VehicleCommand


@dataclass(frozen=True)
class DriverOutput:
    """A driver's command for the next period, and what it shows in the report."""

    command: VehicleCommand
    rationale: str
    path_world: np.ndarray  # (N, 2) planned path in the world frame, for plots; may be empty
    safety_state: str = ''  # the monitor's state when a monitor runs
    failed_rules: tuple[str, ...] = ()  # the monitor's rules that did not pass this cycle
    neural_map: dict[str, np.ndarray] | None = None  # the model's BEV, class -> probability grid


class Driver(Protocol):
    """Anything that drives a SimulationCore one period at a time."""

    name: str

    def reset(self, core: SimulationCore) -> None:
        """Start a new episode."""

    def drive(self, core: SimulationCore, frame: SimFrame) -> DriverOutput:
        """Return the command for the next period."""


class ExpertDriver:
    """The privileged expert: the teacher, and the reference the pipeline is measured against."""

    name = 'expert'

    def reset(self, core: SimulationCore) -> None:
        """Nothing to reset: the core owns the expert of its episode."""

    def drive(self, core: SimulationCore, frame: SimFrame) -> DriverOutput:
        """Ask the expert."""
        decision = core.expert_decision()
        return DriverOutput(decision.command, decision.rationale_text, decision.path_world)


@dataclass
class RecordedStep:
    """One frame kept for the report's video."""

    images: dict[str, np.ndarray]
    bev: dict[str, np.ndarray]
    ego: tuple[float, float, float]
    speed_mps: float
    path_world: np.ndarray
    rationale: str
    safety_state: str
    neural_map: dict[str, np.ndarray] | None  # None for a driver without a model


@dataclass
class EpisodeResult:
    """An episode's metrics, its ego track and (for filmed episodes) its frames."""

    metrics: EpisodeMetrics
    track: np.ndarray  # (steps, 4) x, y, yaw, speed of base_link in the world frame
    frames: list[RecordedStep] = field(default_factory=list)


def run_episode(
    scenario: str,
    seed: int,
    driver: Driver,
    rig: RigConfig,
    *,
    film: bool = False,
    split: Split = Split.TEST,
    sim_config: SimConfig | None = None,
    max_steps: int | None = None,
) -> EpisodeResult:
    """Drive one episode to its end (or `max_steps`) and judge it."""
    config = sim_config or SimConfig(render=film)
    core = SimulationCore(get_scenario(scenario), seed, rig, config, split)
    driver.reset(core)
    log = EpisodeLog(scenario, seed, driver.name, core.instruction, core.world)
    frame = core.frame
    track, frames = [], []
    while not core.done and (max_steps is None or core.steps < max_steps):
        start = time.perf_counter()
        output = driver.drive(core, frame)
        frame = core.step(output.command)
        log.record((time.perf_counter() - start) * 1e3, output.safety_state, output.failed_rules)
        pose = frame.ego.pose
        track.append((pose.x, pose.y, pose.yaw, frame.ego.speed_mps))
        if film:
            frames.append(
                RecordedStep(
                    frame.images,
                    frame.bev,
                    (pose.x, pose.y, pose.yaw),
                    frame.ego.speed_mps,
                    output.path_world,
                    output.rationale,
                    output.safety_state,
                    output.neural_map,
                )
            )
    return EpisodeResult(log.finish(), np.asarray(track, float).reshape(-1, 4), frames)


@dataclass(frozen=True)
class EpisodeJob:
    """One episode of an evaluation: which, and how it is rendered."""

    scenario: str
    seed: int
    film: bool
    render: bool
    split: Split


_worker_driver: Driver | None = None
"""The driver of an evaluation worker process, built on its first episode."""


def _run_job(job: EpisodeJob, driver: Driver, rig: RigConfig) -> EpisodeResult:
    return run_episode(
        job.scenario,
        job.seed,
        driver,
        rig,
        film=job.film,
        split=job.split,
        sim_config=SimConfig(render=job.film or job.render),
    )


def _run_job_in_worker(
    job: EpisodeJob, build_driver: Callable[[], Driver], rig: RigConfig
) -> EpisodeResult:
    """Run one episode in a worker process: a driver that cannot be built fails that job."""
    global _worker_driver
    if _worker_driver is None:
        _worker_driver = build_driver()
    return _run_job(job, _worker_driver, rig)


def evaluate(
    scenarios: list[str],
    episodes: int,
    build_driver: Callable[[], Driver],
    rig: RigConfig,
    *,
    seed_start: int = 0,
    films_per_scenario: int = 1,
    split: Split = Split.TEST,
    render: bool = False,
    workers: int = 1,
) -> Iterator[EpisodeResult]:
    """Yield every episode's result, scenario by scenario, seed by seed.

    `build_driver()` makes the driver that drives every episode of a process (reset in between,
    so a model loads once per process; it must pickle, e.g. a class or a functools.partial).
    With `workers` > 1 each of that many processes builds its own and the episodes are shared
    out: each depends on its scenario and seed alone, so the results are the same, yielded in
    order, and an error building a driver is raised as it would be here (the step wall times
    include the other workers' load). Cameras are rendered for filmed episodes, and for all of
    them when `render` is set: a driver that looks through the cameras needs them.
    """
    for name in scenarios:
        get_scenario(name)  # fail on a bad name before any episode runs
    jobs = [
        EpisodeJob(name, seed_start + index, index < films_per_scenario, render, split)
        for name in scenarios
        for index in range(episodes)
    ]
    if workers <= 1:
        driver = build_driver()
        for job in jobs:
            yield _run_job(job, driver, rig)
        return
    run = functools.partial(_run_job_in_worker, build_driver=build_driver, rig=rig)
    with ProcessPoolExecutor(workers) as pool:
        yield from pool.map(run, jobs)


def summary(results: list[EpisodeResult], by: str = 'scenario') -> dict:
    """Per-scenario (or per-`by`, e.g. 'intent') aggregates of a list of results."""
    return summarise([result.metrics for result in results], by)
