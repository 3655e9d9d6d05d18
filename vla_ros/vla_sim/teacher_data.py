"""`vla teacher record`: the privileged teacher's data, from the expert driving without cameras.

With rendering off the simulator and the expert run at 150-300 steps a second, so data comes at
a scale pixels never allowed. Every episode is a scenario, a seed and an instruction drawn from
the scenario family's intents (wider than the scenarios' own, so the same road is seen under
many requests) in training wording. Every `keep_every`-th state is kept with:
- the expert's own next 3 s as the label (it is the driver: its future is the answer), and
- every `counterfactual_every`-th state, the expert's plan from that state under
  `counterfactuals` other instructions (vla_sim.expert_lookahead.expert_rollout), so that the
  same scene with other words has other answers and grounding is learned from the contrast.
Episodes are independent tasks over a process pool, each written as one shard named by its
scenario, intent and seed; a shard already there is skipped, so a stopped run resumes.
"""

from __future__ import annotations

import argparse
import functools
import multiprocessing
import random
import sys
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from vla_model.config import MAX_INSTRUCTION_AGE_S, ModelConfig
from vla_model.driving_labels import in_frame_of
from vla_model.privileged_dataset import (
    SOURCES,
    DatasetSettings,
    prepare_dataset,
    write_shard,
)
from vla_model.teacher_network import TeacherConfig
from vla_perception.rig import RigConfig, default_rig_path
from vla_sim.bev_ground_truth import BevGrid
from vla_sim.expert_lookahead import expert_rollout
from vla_sim.instructions import InstructionGenerator, InstructionSample, Intent, Split
from vla_sim.privileged_bev import privileged_raster
from vla_sim.scenarios import get_scenario
from vla_sim.simulation import SimConfig, SimFrame, SimulationCore

if TYPE_CHECKING:
    from vla_sim.evaluation import Driver
    from vla_sim.teacher_driver import TeacherDriver

_HIGHWAY_INTENTS = (
    Intent.KEEP_LANE,
    Intent.CHANGE_LANE_LEFT,
    Intent.CHANGE_LANE_RIGHT,
    Intent.SET_SPEED,
    Intent.FOLLOW_LEAD,
    Intent.PULL_OVER,
    Intent.STOP_BEHIND_LEAD,
)
_EVENT_INTENTS = (
    Intent.KEEP_LANE,
    Intent.CHANGE_LANE_LEFT,
    Intent.CHANGE_LANE_RIGHT,
    Intent.SET_SPEED,
    Intent.FOLLOW_LEAD,
)
FAMILIES: dict[str, tuple[float, tuple[Intent, ...]]] = {
    'highway': (3.0, _HIGHWAY_INTENTS),
    'dense_traffic': (1.0, _HIGHWAY_INTENTS),
    'exit': (2.0, (Intent.TAKE_EXIT, Intent.KEEP_LANE, Intent.CHANGE_LANE_LEFT, Intent.SET_SPEED)),
    'merge': (1.0, (Intent.KEEP_LANE, Intent.SET_SPEED, Intent.FOLLOW_LEAD)),
    'roundabout': (3.0, (Intent.KEEP_LANE, Intent.FOLLOW_LEAD)),
    'intersection': (3.0, (Intent.KEEP_LANE, Intent.FOLLOW_LEAD)),
    'pull_over': (1.0, (Intent.PULL_OVER,)),
    'stop_behind_lead': (1.0, (Intent.STOP_BEHIND_LEAD, Intent.KEEP_LANE)),
    'cut_in': (0.5, _EVENT_INTENTS),
    'hard_braking_lead': (0.5, _EVENT_INTENTS),
    'stalled_vehicle': (0.5, _EVENT_INTENTS),
    'slow_truck': (0.5, _EVENT_INTENTS),
    'debris': (0.5, _EVENT_INTENTS),
    'crossing_pedestrian': (0.5, _EVENT_INTENTS),
}
"""Scenario -> (sampling weight, intents its episodes are recorded under). Junctions weigh
more: their episodes are short and their geometry the hardest to learn."""
SPOKEN_SPEEDS_KMH = tuple(range(30, 105, 5))
"""SET_SPEED targets of the training data: wider than any scenario's, in the 5 km/h steps
people say."""
LANE_CHANGES = (Intent.CHANGE_LANE_LEFT, Intent.CHANGE_LANE_RIGHT)


@dataclass(frozen=True)
class EpisodeTask:
    """One episode to record."""

    scenario: str
    seed: int
    intent: Intent
    target_speed_mps: float | None

    @property
    def shard_name(self) -> str:
        """The shard's file name: what and which seed, so a rerun finds it done."""
        speed = '' if self.target_speed_mps is None else f'-{round(self.target_speed_mps * 3.6)}'
        return f'{self.scenario}-{self.intent.value}{speed}-{self.seed:06d}.npz'


@dataclass(frozen=True)
class RecordSettings:
    """How states are sampled and labelled."""

    keep_every: int = 2  # keep every n-th simulator step (0.2 s at the 10 Hz simulator)
    counterfactual_every: int = 10  # label every n-th step under other instructions too
    counterfactuals: int = 2  # other instructions per such state


def draw_target_speed(intent: Intent, rng: random.Random) -> float | None:
    """Return a spoken SET_SPEED target (m/s) for SET_SPEED, None for other intents."""
    if intent is not Intent.SET_SPEED:
        return None
    return rng.choice(SPOKEN_SPEEDS_KMH) / 3.6


def episode_tasks(count: int, seed_start: int) -> list[EpisodeTask]:
    """Return `count` episodes, each seed's scenario and intent drawn from the seed alone."""
    names = list(FAMILIES)
    weights = [FAMILIES[name][0] for name in names]
    tasks = []
    for seed in range(seed_start, seed_start + count):
        rng = random.Random(f'teacher-data/{seed}')
        scenario = rng.choices(names, weights)[0]
        intent = rng.choice(FAMILIES[scenario][1])
        tasks.append(EpisodeTask(scenario, seed, intent, draw_target_speed(intent, rng)))
    return tasks


def instruction_for(
    intent: Intent, target_speed_mps: float | None, seed: int, split: Split = Split.TRAIN
) -> InstructionSample:
    """Return an instruction of `intent` in `split` wording, drawn from `seed`."""
    return InstructionGenerator(split, seed).sample(intent, target_speed_mps)


def ego_state(frame: SimFrame, instruction_age_s: float, config: ModelConfig) -> np.ndarray:
    """Return the teacher's ego-state input (EGO_STATE_FIELDS) from the simulator's truth."""
    ego = frame.ego
    state = (
        ego.speed_mps,
        ego.yaw_rate_rps,
        ego.acceleration_mps2,
        min(instruction_age_s, MAX_INSTRUCTION_AGE_S),
    )
    return np.asarray(state[: config.ego_state_dim], np.float32)


def teacher_raster(core: SimulationCore, frame: SimFrame) -> np.ndarray:
    """Return the privileged raster of `frame` in `core`'s episode."""
    return privileged_raster(frame.scene, core.bev_grid, frame.bev, frame.map_prior)


class TextTable:
    """A shard's instructions, each (text, intent) stored once and referred to by index."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.intents: list[str] = []
        self._index: dict[tuple[str, str], int] = {}

    def index(self, instruction: InstructionSample) -> int:
        """Return the instruction's index, adding it the first time."""
        key = (instruction.text, instruction.intent.value)
        if key not in self._index:
            self._index[key] = len(self.texts)
            self.texts.append(instruction.text)
            self.intents.append(instruction.intent.value)
        return self._index[key]


class SampleBuffer:
    """Samples collected for one shard."""

    def __init__(self) -> None:
        self.columns: dict[str, list] = {
            key: []
            for key in ('raster', 'ego_state', 'text_index', 'trajectory', 'rationale', 'source')
        }
        self.table = TextTable()

    def __len__(self) -> int:
        return len(self.columns['source'])

    def add(
        self,
        raster: np.ndarray,
        state: np.ndarray,
        instruction: InstructionSample,
        trajectory: np.ndarray,
        rationale: int,
        source: str,
    ) -> None:
        """Keep one labelled sample."""
        index = self.table.index(instruction)
        values = (raster, state, index, trajectory, rationale, SOURCES.index(source))
        for column, value in zip(self.columns.values(), values, strict=True):
            column.append(value)

    def write(self, path: Path, config: TeacherConfig) -> None:
        """Write the samples as one shard."""
        columns = self.columns
        write_shard(
            path,
            np.stack(columns['raster']),
            config.channels,
            ego_state=np.stack(columns['ego_state']),
            text_index=np.asarray(columns['text_index'], np.int32),
            trajectory=np.stack(columns['trajectory']).astype(np.float32),
            rationale=np.asarray(columns['rationale'], np.int8),
            source=np.asarray(columns['source'], np.uint8),
            texts=self.table.texts,
            intents=self.table.intents,
        )


def lane_change_made(core: SimulationCore, start_lane: int) -> bool:
    """Whether the episode's instructed lane change is behind the ego (whoever drove it)."""
    intent, lane = core.instruction.intent, core.world.ego.lane_index[2]
    return (intent is Intent.CHANGE_LANE_LEFT and lane < start_lane) or (
        intent is Intent.CHANGE_LANE_RIGHT and lane > start_lane
    )


def record_episode(
    task: EpisodeTask,
    out_dir: Path,
    config: TeacherConfig,
    settings: RecordSettings,
    driver: TeacherDriver | None = None,
) -> int:
    """Drive one episode, write its shard; return the samples written.

    Without `driver` the expert drives and its own future labels its states; with one (DAgger)
    the driver drives and every kept state is labelled by the expert's rollout from there.
    """
    plan = config.plan
    rig = RigConfig.from_file(default_rig_path())
    instruction = instruction_for(task.intent, task.target_speed_mps, task.seed)
    core = SimulationCore(
        get_scenario(task.scenario),
        task.seed,
        rig,
        SimConfig(render=False),
        bev_grid=BevGrid.from_model(plan),
        instruction=instruction,
    )
    if driver is not None:
        driver.reset(core)
    start_lane = core.world.ego.lane_index[2]
    stride = round(plan.step_s / core.config.step_s)
    rng = random.Random(f'counterfactual/{task.seed}')
    buffer = SampleBuffer()
    kept: list[tuple[int, np.ndarray, np.ndarray, int]] = []  # step, raster, state, rationale
    poses = []
    frame = core.frame
    while True:
        pose = frame.ego.pose
        poses.append((pose.x, pose.y, pose.yaw))
        if core.done:
            break
        step = core.steps
        if driver is None:
            decision = core.expert_decision()
            command, rationale = decision.command, decision.rationale
        else:
            command = driver.drive(core, frame).command
        if step % settings.keep_every == 0:
            raster = teacher_raster(core, frame)
            state = ego_state(frame, core.world.time_s, plan)
            if driver is None:
                kept.append((step, raster, state, rationale))
            else:
                done = lane_change_made(core, start_lane)
                label, rationale = expert_rollout(core, plan, core.instruction, done)
                buffer.add(raster, state, instruction, label, rationale, 'on_policy')
            if step % settings.counterfactual_every == 0:
                _add_counterfactuals(core, frame, raster, task, rng, settings, buffer, plan)
        frame = core.step(command)
    poses = np.asarray(poses)
    for step, raster, state, rationale in kept:
        future = step + stride * np.arange(1, plan.horizon_steps + 1)
        if future[-1] >= len(poses):
            break  # the end of the episode: no full future to learn from
        label = in_frame_of(poses[step], poses[future]).astype(np.float32)
        buffer.add(raster, state, instruction, label, rationale, 'expert')
    if len(buffer):
        buffer.write(out_dir / task.shard_name, config)
    return len(buffer)


def counterfactual_instructions(
    task: EpisodeTask, rng: random.Random, count: int
) -> list[tuple[InstructionSample, float]]:
    """Return up to `count` other instructions of the scenario family, each with its age.

    A lane change is asked once and done once: only its fresh request (age 0) has a known
    answer; other requests may have been given any time before.
    """
    others = [i for i in FAMILIES[task.scenario][1] if i is not task.intent]
    drawn = []
    for intent in rng.sample(others, min(count, len(others))):
        seed = rng.randrange(1 << 30)
        instruction = instruction_for(intent, draw_target_speed(intent, rng), seed)
        age = 0.0 if intent in LANE_CHANGES else rng.uniform(0.0, MAX_INSTRUCTION_AGE_S)
        drawn.append((instruction, age))
    return drawn


def _add_counterfactuals(
    core: SimulationCore,
    frame: SimFrame,
    raster: np.ndarray,
    task: EpisodeTask,
    rng: random.Random,
    settings: RecordSettings,
    buffer: SampleBuffer,
    plan: ModelConfig,
) -> None:
    """Label the state under other instructions of the scenario family."""
    for instruction, age in counterfactual_instructions(task, rng, settings.counterfactuals):
        label, rationale = expert_rollout(core, plan, instruction)
        buffer.add(
            raster, ego_state(frame, age, plan), instruction, label, rationale, 'counterfactual'
        )


class DriverRecipe(Protocol):
    """How to build a driver in each worker process.

    It pickles and hashes (a frozen dataclass): TeacherDriving, or
    vla_sim.camera_data.StudentDriving.
    """

    def build(self) -> Driver:
        """Load and return the driver."""


@dataclass(frozen=True)
class TeacherDriving:
    """The privileged teacher of these weights drives, through the monitor and controller."""

    weights: Path

    def build(self) -> TeacherDriver:
        """Load the teacher."""
        from vla_sim.teacher_driver import TeacherDriver

        return TeacherDriver(self.weights)


@functools.cache
def worker_driver(driving: DriverRecipe | None) -> Driver | None:
    """One driver per worker process, loaded on its first episode; None: the expert drives."""
    return None if driving is None else driving.build()


def episode_job(record_episode: Callable[..., int], job: tuple) -> int:
    """Record one episode in a worker: `job` is (task, out_dir, settings, who drives).

    The teacher records in its own configuration, the other drivers in the default one.
    """
    task, out_dir, settings, driving = job
    driver = worker_driver(driving)
    config = driver.config if isinstance(driving, TeacherDriving) else TeacherConfig()
    return record_episode(task, out_dir, config, settings, driver)


def record_episodes(
    record_episode: Callable[..., int],
    out_dir: Path,
    tasks: list[EpisodeTask],
    extra: tuple,
    workers: int,
    progress: bool,
    label: str,
) -> dict:
    """Record the tasks whose shard is not in `out_dir` yet; return the counts.

    `record_episode(task, out_dir, config, settings, driver)` runs on `workers` processes with
    `extra` = (settings, who drives: None for the expert, or a DriverRecipe); the counts are
    episodes, recorded and samples.
    """
    from tqdm import tqdm

    record = functools.partial(episode_job, record_episode)
    todo = [t for t in tasks if not (out_dir / t.shard_name).is_file()]
    jobs = [(task, out_dir, *extra) for task in todo]
    samples = 0
    bar = tqdm(total=len(jobs), unit='episode', disable=not progress, desc=label)
    if workers <= 1:
        for job in jobs:
            samples += record(job)
            bar.update()
    else:
        # Spawned, not forked: a process forked after torch ran its thread pool (the training
        # before an on-policy round in `vla distill`) hangs at its first torch operation.
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context('spawn')) as pool:
            for count in pool.map(record, jobs):
                samples += count
                bar.update()
    bar.close()
    return {'episodes': len(tasks), 'recorded': len(todo), 'samples': samples}


def record_dataset(
    out_dir: Path,
    episodes: int,
    seed_start: int,
    workers: int,
    settings: RecordSettings | None = None,
    progress: bool = True,
    driver_weights: Path | None = None,
) -> dict:
    """Record the episodes not yet in `out_dir` over `workers` processes; return counts.

    `driver_weights`: a teacher drives (on-policy, DAgger) and the expert labels its states.
    """
    settings = settings or RecordSettings()
    config = TeacherConfig()
    prepare_dataset(out_dir, DatasetSettings.of(config))
    label = 'on-policy data' if driver_weights else 'teacher data'
    tasks = episode_tasks(episodes, seed_start)
    driving = TeacherDriving(driver_weights) if driver_weights else None
    return record_episodes(
        record_episode, out_dir, tasks, (settings, driving), workers, progress, label
    )


def add_recording_arguments(
    parser: argparse.ArgumentParser, episodes: int, seed_start: int, keep_every: int
) -> None:
    """Add the arguments every episode recorder takes (`vla teacher|student record`)."""
    parser.add_argument('out_dir', type=Path, help='data set folder (created, or resumed)')
    parser.add_argument('--episodes', type=int, default=episodes, help='episodes in the data set')
    parser.add_argument(
        '--seed-start', type=int, default=seed_start, help='first seed (evaluation uses 0-999)'
    )
    parser.add_argument('--workers', type=int, default=2, help='processes (default 2)')
    parser.add_argument('--keep-every', type=int, default=keep_every, help='keep every n-th step')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')


def run_recording(
    command: str,
    args: argparse.Namespace,
    at_least_one: tuple[str, ...],
    record: Callable[[], dict],
) -> int:
    """Check the counts in `args`, run `record()` and print what it did.

    Bad input (a count below one, a data set of other settings, unloadable weights) is one
    line on stderr and exit code 1.
    """
    from vla_model.artifacts import ArtifactError
    from vla_model.privileged_dataset import DatasetError

    for name in ('episodes', 'workers', 'keep_every', *at_least_one):
        if getattr(args, name) < 1:
            print(f'{command}: --{name.replace("_", "-")} must be >= 1', file=sys.stderr)
            return 1
    try:
        counts = record()
    except (DatasetError, ArtifactError, FileNotFoundError) as error:
        print(f'{command}: {error}', file=sys.stderr)
        return 1
    print(
        f'{counts["recorded"]} episode(s) recorded ({counts["samples"]} samples), '
        f'{counts["episodes"] - counts["recorded"]} already there, in {args.out_dir}'
    )
    return 0


def add_teacher_record_arguments(parser: argparse.ArgumentParser) -> None:
    """Add `vla teacher record`'s arguments."""
    add_recording_arguments(parser, episodes=1000, seed_start=100_000, keep_every=2)
    parser.add_argument(
        '--counterfactual-every', type=int, default=10, help='label other instructions every n'
    )
    parser.add_argument('--counterfactuals', type=int, default=2, help='other instructions')
    parser.add_argument(
        '--driver-weights',
        type=Path,
        help='on-policy (DAgger): this teacher drives, the expert labels every kept state',
    )


def run_teacher_record(args: argparse.Namespace) -> int:
    """Run `vla teacher record`."""
    settings = RecordSettings(args.keep_every, args.counterfactual_every, args.counterfactuals)
    return run_recording(
        'vla teacher record',
        args,
        ('counterfactual_every',),
        lambda: record_dataset(
            args.out_dir,
            args.episodes,
            args.seed_start,
            args.workers,
            settings,
            not args.no_progress,
            args.driver_weights,
        ),
    )
