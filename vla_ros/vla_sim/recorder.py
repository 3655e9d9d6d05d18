"""Record expert demonstrations: one rosbag2 (MCAP) bag per seeded episode of a scenario.

The privileged expert drives a `SimulationCore` in lockstep and every frame is written with the
topics, types, QoS and order that sim_bridge_node publishes, serialised by rclpy: a recorded bag
is what `ros2 bag record` of a bridge run holds and replays into the stack unchanged. The labels
ride along: BEV ground truth per class, the expert's rationale and its ControlCommand.

For closed-loop data aggregation (DAgger) the pipeline drives instead: the student model through
the whole stack (`PipelineDriver`), optionally with the expert's command executed on a share of
the frames (DAgger's beta). The bag then holds the states the student itself reaches, each
labelled with what the expert would drive from there (`expert_lookahead`) on
/sim/expert/trajectory, which the training dataset prefers to the logged future; the
ControlCommand is the one that drove.

Recording is resumable. An episode is written under `<out>/.partial/` and moved to its final name
only once complete, so a final name always holds a whole bag; a re-run skips those and removes
what an interrupted run left in `.partial/`. Each bag's metadata carries its episode's settings
and outcome: a re-run refuses a bag recorded with other settings and reuses the outcome.

The simulation stack (highway-env) takes seconds to import and `vla` builds its parser from this
module, so it is imported where a recording starts, not at the top.
"""

from __future__ import annotations

import argparse
import errno
import fcntl
import json
import math
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import yaml
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys.store import Typestore
from tqdm import tqdm

from vla_model.config import BEV_CLASSES, ModelConfig
from vla_perception.rig import RigConfig
from vla_planning.tracking_controller import Command
from vla_planning.trajectory_output_node import control_command_message
from vla_ros.bag_types import make_typestore
from vla_ros.bag_writing import MessageBagWriter
from vla_ros.install_paths import vla_ros_file
from vla_ros.reports import write_json
from vla_ros.stamps import to_time
from vla_sim.driver_options import add_pipeline_arguments, pipeline_driver
from vla_sim.instructions import Split

if TYPE_CHECKING:
    from vla_msgs.msg import ControlCommand, Trajectory

    from vla_sim.expert import ExpertDecision
    from vla_sim.pipeline_driver import PipelineDriver
    from vla_sim.scenarios import Scenario
    from vla_sim.simulation import SimConfig, SimulationCore
    from vla_sim.world import VehicleCommand

DEFAULT_RIG = 'config/rig_surround.yaml'
PARTIAL_DIR = '.partial'
RECORDING_JSON = 'recording.json'
EPISODE_KEY = 'vla_ros.episode'  # bag metadata custom_data: the episode's settings and outcome
DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
OTHER_BYTES_PER_FRAME = 32 * 1024
"""Per frame, besides images and BEV grids: camera infos, obstacles, labels, MCAP indexes."""


class RecordError(RuntimeError):
    """A recording cannot go on; the message says why and what to do."""


@dataclass(frozen=True)
class EpisodeOutcome:
    """One episode of a recording: where its bag is and how the episode ended."""

    seed: int
    bag: str  # folder name under the output directory
    skipped: bool  # True: recorded by an earlier run and left as it was
    frames: int
    bytes: int
    instruction: str
    collided: bool
    off_road: bool


@dataclass(frozen=True)
class RecordSummary:
    """What one `record` call did; frames and bytes count this run's episodes only."""

    scenario: str
    out_dir: Path
    episodes: tuple[EpisodeOutcome, ...]
    seconds: float

    @property
    def written(self) -> int:
        """Episodes recorded by this run."""
        return sum(not episode.skipped for episode in self.episodes)

    @property
    def skipped(self) -> int:
        """Episodes an earlier run had recorded already."""
        return sum(episode.skipped for episode in self.episodes)

    @property
    def frames(self) -> int:
        """Frames recorded by this run."""
        return sum(episode.frames for episode in self.episodes if not episode.skipped)

    @property
    def bytes(self) -> int:
        """Bytes of the bags recorded by this run."""
        return sum(episode.bytes for episode in self.episodes if not episode.skipped)


def bag_name(scenario: str, seed: int) -> str:
    """Return the folder (and MCAP file stem) of one episode's bag."""
    return f'{scenario}_seed{seed}'


def episode_frames(scenario: Scenario, config: SimConfig, max_steps: int | None) -> int:
    """Return the frames of an episode run to its time limit: the first, then one per step."""
    steps = math.ceil(scenario.duration_s / config.step_s - 1e-6)
    return 1 + (steps if max_steps is None else min(steps, max_steps))


def estimate_episode_bytes(rig: RigConfig, frames: int) -> int:
    """Return about the size of an episode's bag: raw images dominate, then BEV grids."""
    rows, cols = ModelConfig().bev_size
    images = sum(3 * spec.intrinsics.width * spec.intrinsics.height for spec in rig.cameras)
    return frames * (images + len(BEV_CLASSES) * rows * cols + OTHER_BYTES_PER_FRAME)


def _human(size: int) -> str:
    return f'{size / 1e9:.2f} GB' if size >= 1e9 else f'{size / 1e6:.1f} MB'


def _json_ready(value: object) -> object:
    """`value` as it reads back from JSON (tuples become lists), so settings compare equal."""
    return json.loads(json.dumps(value))


def _settings(
    scenario: str,
    split: Split,
    rig: RigConfig,
    config: SimConfig,
    max_steps: int | None,
    student: PipelineDriver | None,
    expert_share: float,
) -> dict:
    """Return what makes two recordings of a seed the same episode (a re-run must match)."""
    settings = {
        'scenario': scenario,
        'split': split.value,
        'sim_config': asdict(config),
        'max_steps': max_steps,
        'cameras': [asdict(spec) for spec in rig.cameras],
    }
    if student is not None:  # expert recordings keep the settings they always had
        settings['student'] = {
            'model': student.model_id,
            'monitor_enforces': student.enforce,
            'map_prior': student.use_map_prior,
            'expert_share': expert_share,
        }
    return _json_ready(settings)


def _check_rig(rig: RigConfig, rig_path: Path) -> None:
    """Refuse a rig the simulator cannot render or the recorder cannot publish as it asks."""
    no_intrinsics = [spec.name for spec in rig.cameras if spec.intrinsics is None]
    if no_intrinsics:
        raise RecordError(
            f'rig {rig_path}: cameras {", ".join(no_intrinsics)} have no intrinsics; the '
            'simulator renders with the rig file intrinsics'
        )
    compressed = [spec.name for spec in rig.cameras if spec.compressed]
    if compressed:
        raise RecordError(
            f'rig {rig_path}: cameras {", ".join(compressed)} use compressed transport; the '
            'recorder writes raw images (image_raw), so set transport: raw'
        )


def _prepare_out_dir(out_dir: Path) -> int:
    """Create the output and partial folders; lock the partial folder for this run.

    Returns the lock's file descriptor. The lock keeps a second recorder on the same folder from
    deleting this run's partial bag as stale.
    """
    partial_root = out_dir / PARTIAL_DIR
    try:
        partial_root.mkdir(parents=True, exist_ok=True)
        lock = os.open(partial_root, os.O_RDONLY)
    except OSError as error:
        raise RecordError(
            f'output directory {out_dir} is not writable: {error.strerror or error} '
            f'({error.filename or out_dir}); pass another --out'
        ) from error
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(lock)
        raise RecordError(
            f'another recording is writing to {out_dir}; wait for it or pass another --out'
        ) from None
    for stale in sorted(partial_root.iterdir()):
        if stale.is_dir():
            shutil.rmtree(stale)
        else:
            stale.unlink()
        print(f'removed {stale}: an interrupted recording left it incomplete')
    return lock


def _check_free_space(out_dir: Path, needed: int, episodes: int) -> None:
    free = shutil.disk_usage(out_dir).free
    if free < needed:
        raise RecordError(
            f'not enough disk space: {episodes} episode(s) need about {_human(needed)}, but only '
            f'{_human(free)} is free on the file system of {out_dir}; record fewer episodes, '
            'free space, or pass another --out'
        )


def _disk_full(name: str, out_dir: Path, episode_bytes: int, completed: int) -> RecordError:
    """Return the error of a full disk: what is free where, and how to go on."""
    return RecordError(
        f'disk full while recording {name}: {_human(shutil.disk_usage(out_dir).free)} free on '
        f'the file system of {out_dir} (an episode needs about {_human(episode_bytes)}); the '
        f'incomplete bag was removed and {completed} episode(s) of this run are complete. Free '
        'space and run the same command again to resume.'
    )


def _finished_outcome(bag: Path, seed: int, settings: dict) -> EpisodeOutcome:
    """Return the outcome stored in a finished bag; refuse one recorded with other settings."""
    metadata_path = bag / 'metadata.yaml'
    custom = {}
    if metadata_path.is_file():
        metadata = yaml.safe_load(metadata_path.read_text(encoding='utf-8'))
        custom = metadata['rosbag2_bagfile_information'].get('custom_data') or {}
    if EPISODE_KEY not in custom:
        raise RecordError(f'{bag} is not a bag this recorder wrote; move it away or pass --out')
    stored = json.loads(custom[EPISODE_KEY])
    if stored['settings'] != settings:
        differ = sorted(k for k in settings if stored['settings'].get(k) != settings[k])
        raise RecordError(
            f'{bag} was recorded with other settings ({", ".join(differ)} differ); record '
            'into another --out, or remove it to record it again'
        )
    return EpisodeOutcome(
        seed=seed,
        bag=bag.name,
        skipped=True,
        frames=stored['frames'],
        bytes=sum(path.stat().st_size for path in bag.iterdir()),
        instruction=stored['instruction'],
        collided=stored['collided'],
        off_road=stored['off_road'],
    )


def _control_command(
    decision: ExpertDecision, previous: VehicleCommand, step_s: float, stamp_ns: int
) -> ControlCommand:
    """Return the expert's command as trajectory_output_node publishes a controller's."""
    command = decision.command
    steering_change = command.steering_tire_angle_rad - previous.steering_tire_angle_rad
    return control_command_message(
        Command(
            steering_tire_angle_rad=command.steering_tire_angle_rad,
            steering_rate_rps=steering_change / step_s,
            velocity_mps=decision.target_speed_mps,
            acceleration_mps2=command.acceleration_mps2,
            jerk_mps3=(command.acceleration_mps2 - previous.acceleration_mps2) / step_s,
            cross_track_error_m=0.0,
            target_speed_mps=decision.target_speed_mps,
            stopping=False,
            reason='expert',
        ),
        to_time(stamp_ns),
    )


def expert_label_message(core: SimulationCore, config: ModelConfig, stamp_ns: int) -> Trajectory:
    """Return what the expert would drive from `core`'s state, in base_link at `stamp_ns`."""
    from std_msgs.msg import Header
    from vla_msgs.msg import Trajectory

    from vla_planning.vla_inference_node import candidate_message
    from vla_sim.expert_lookahead import expert_lookahead
    from vla_sim.sim_messages import BASE_FRAME

    times = np.arange(1, config.horizon_steps + 1) * config.step_s
    return candidate_message(
        expert_lookahead(core, config),
        times,
        config.step_s,
        Header(stamp=to_time(stamp_ns), frame_id=BASE_FRAME),
        Trajectory.ORIGIN_EXPERT,
    )


def _record_episode(
    core: SimulationCore,
    path: Path,
    typestore: Typestore,
    settings: dict,
    max_steps: int | None,
    bar: tqdm,
    student: PipelineDriver | None,
    expert_share: float,
) -> None:
    """Drive the episode, writing every frame as the bridge publishes it.

    The expert drives unless a `student` is given; then the student does, except on the
    `expert_share` of frames (drawn from the episode's seed) where the expert's command is
    executed, and every frame carries the expert's trajectory label.
    """
    from vla_ros.qos import RELIABLE
    from vla_ros.topics import (
        CONTROL_COMMAND_TOPIC,
        EXPERT_TRAJECTORY_TOPIC,
        INSTRUCTION_TOPIC,
    )
    from vla_sim.sim_messages import frame_messages, frame_topics, instruction_message
    from vla_sim.world import VehicleCommand

    qos = {
        topic: profile for topic, (_, profile) in frame_topics(core.rig, core.frame.bev).items()
    }
    qos[EXPERT_TRAJECTORY_TOPIC] = RELIABLE
    draws = np.random.default_rng(core.seed)
    if student is not None:
        student.reset(core)
    previous = VehicleCommand()
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        bag = MessageBagWriter(writer, typestore, qos)
        stamp = core.frame.stamp_ns
        bag.write(
            INSTRUCTION_TOPIC, instruction_message(core.instruction, stamp, core.seed), stamp
        )
        while True:
            frame = core.frame
            stamp = frame.stamp_ns
            label = None
            if student is not None:  # before the expert's own step: its state as it drives
                label = expert_label_message(core, student.model_config, stamp)
            decision = core.expert_decision()
            messages = frame_messages(
                frame, core.rig, core.bev_grid, decision.rationale_text, stamp
            )
            executed = decision.command
            command = _control_command(decision, previous, core.config.step_s, stamp)
            if student is not None:
                messages.insert(-1, (EXPERT_TRAJECTORY_TOPIC, label))
                output = student.drive(core, frame)
                if draws.random() >= expert_share:
                    executed = output.command
                    command = control_command_message(student.last.command, to_time(stamp))
            messages.insert(-1, (CONTROL_COMMAND_TOPIC, command))  # before /clock
            for topic, message in messages:
                bag.write(topic, message, stamp)
            bar.update()
            if core.done or core.steps == max_steps:
                break
            previous = executed
            core.step(executed)
        writer.set_custom_data(
            EPISODE_KEY,
            json.dumps(
                {
                    'settings': settings,
                    'seed': core.seed,
                    'frames': core.steps + 1,
                    'instruction': core.instruction.text,
                    'intent': core.instruction.intent.value,
                    'collided': core.world.collided,
                    'off_road': core.world.off_road,
                }
            ),
        )


def record(
    scenario: str,
    episodes: int,
    out_dir: Path,
    *,
    rig_path: str | Path | None = None,
    seed_start: int = 0,
    split: Split = Split.TRAIN,
    sim_config: SimConfig | None = None,
    progress: bool = True,
    max_steps: int | None = None,
    student: PipelineDriver | None = None,
    expert_share: float = 0.0,
) -> RecordSummary:
    """Record `episodes` seeded episodes of `scenario` into `out_dir`, one bag each.

    `rig_path` None is the packaged rig; `max_steps` cuts each episode short (tests, previews).
    `student` drives instead of the expert (DAgger), the expert's command taking over on an
    `expert_share` of the frames; each frame then carries the expert's trajectory label.
    Raises ValueError for an unknown scenario or bad counts and RecordError for an output folder
    that cannot take the recording (not writable, another run on it, disk full, other settings).
    """
    from vla_sim.scenarios import get_scenario
    from vla_sim.simulation import SimConfig, SimulationCore

    start = time.perf_counter()
    if episodes < 1 or seed_start < 0 or (max_steps is not None and max_steps < 0):
        raise ValueError(
            f'need episodes >= 1, seed_start >= 0 and max_steps >= 0; got {episodes}, '
            f'{seed_start}, {max_steps}'
        )
    if not 0.0 <= expert_share <= 1.0:
        raise ValueError(f'expert_share must be in [0, 1], got {expert_share}')
    try:
        spec = get_scenario(scenario)
    except KeyError as error:
        raise ValueError(error.args[0]) from None
    config = sim_config or SimConfig()
    if not config.render:
        raise ValueError('the recorder records camera images: sim_config.render must be True')
    rig_path = Path(rig_path or vla_ros_file(DEFAULT_RIG))
    rig = RigConfig.from_file(rig_path)
    _check_rig(rig, rig_path)
    if student is not None and student.rig.names != rig.names:
        raise ValueError(
            f'the student drives cameras {student.rig.names}, the rig has {rig.names}'
        )
    settings = _settings(scenario, split, rig, config, max_steps, student, expert_share)

    out_dir = Path(out_dir)
    lock = _prepare_out_dir(out_dir)
    try:
        seeds = range(seed_start, seed_start + episodes)
        done = {
            seed: _finished_outcome(out_dir / bag_name(scenario, seed), seed, settings)
            for seed in seeds
            if (out_dir / bag_name(scenario, seed)).exists()
        }
        for outcome in done.values():
            print(f'{outcome.bag}: already recorded, skipping')
        todo = [seed for seed in seeds if seed not in done]
        frames = episode_frames(spec, config, max_steps)
        episode_bytes = estimate_episode_bytes(rig, frames)
        _check_free_space(out_dir, episode_bytes * len(todo), len(todo))
        typestore = make_typestore()
        outcomes = dict(done)
        with tqdm(
            total=frames * len(todo), unit='frame', desc=scenario, disable=not (progress and todo)
        ) as bar:
            for seed in todo:
                core = SimulationCore(spec, seed, rig, config, split)
                name = bag_name(scenario, seed)
                partial = out_dir / PARTIAL_DIR / name
                try:
                    _record_episode(
                        core, partial, typestore, settings, max_steps, bar, student, expert_share
                    )
                    partial.rename(out_dir / name)
                except BaseException as error:
                    shutil.rmtree(partial, ignore_errors=True)
                    if isinstance(error, OSError) and error.errno in DISK_FULL_ERRNOS:
                        completed = len(outcomes) - len(done)
                        raise _disk_full(name, out_dir, episode_bytes, completed) from error
                    raise
                recorded = core.steps + 1
                bar.total -= frames - recorded  # an episode that ended early
                bar.refresh()
                outcome = EpisodeOutcome(
                    seed=seed,
                    bag=name,
                    skipped=False,
                    frames=recorded,
                    bytes=sum(path.stat().st_size for path in (out_dir / name).iterdir()),
                    instruction=core.instruction.text,
                    collided=core.world.collided,
                    off_road=core.world.off_road,
                )
                outcomes[seed] = outcome
                bar.write(_describe(outcome))
    finally:
        os.close(lock)
    summary = RecordSummary(
        scenario=scenario,
        out_dir=out_dir,
        episodes=tuple(outcomes[seed] for seed in seeds),
        seconds=time.perf_counter() - start,
    )
    write_json(
        out_dir / RECORDING_JSON,
        {
            'scenario': scenario,
            'description': spec.description,
            'seeds': list(seeds),
            'rig': str(rig_path.resolve()),
            'settings': settings,
            'written': summary.written,
            'skipped': summary.skipped,
            'frames_written': summary.frames,
            'bytes_written': summary.bytes,
            'seconds': summary.seconds,
            'episodes': [asdict(outcome) for outcome in summary.episodes],
        },
    )
    return summary


def _describe(outcome: EpisodeOutcome) -> str:
    ending = 'collision' if outcome.collided else 'off road' if outcome.off_road else 'completed'
    return (
        f'{outcome.bag}: {outcome.frames} frames, {_human(outcome.bytes)}, {ending}; '
        f'instruction {outcome.instruction!r}'
    )


def _count(text: str, minimum: int) -> int:
    value = int(text)
    if value < minimum:
        raise argparse.ArgumentTypeError(f'must be at least {minimum}, got {value}')
    return value


def add_record_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of `vla sim record` to `parser`."""
    parser.add_argument(
        '--scenario',
        required=True,
        metavar='NAME',
        help='scenario to record, e.g. highway (an unknown name lists the known ones)',
    )
    parser.add_argument(
        '--episodes',
        type=lambda text: _count(text, 1),
        required=True,
        metavar='N',
        help='episodes to record: seeds K .. K + N - 1',
    )
    parser.add_argument(
        '--out', type=Path, required=True, metavar='DIR', help='output folder: one bag per episode'
    )
    parser.add_argument(
        '--seed-start',
        type=lambda text: _count(text, 0),
        default=0,
        metavar='K',
        help='seed of the first episode (default 0)',
    )
    parser.add_argument(
        '--rig',
        type=Path,
        metavar='PATH',
        help=f'camera rig file (default: packaged {DEFAULT_RIG})',
    )
    parser.add_argument(
        '--split',
        choices=[split.value for split in Split],
        default=Split.TRAIN.value,
        help='instruction paraphrases to draw from (default train)',
    )
    parser.add_argument(
        '--driver',
        choices=('expert', 'pipeline'),
        default='expert',
        help='who drives: the expert (demonstrations, default) or the pipeline with a student '
        'model (DAgger: the states it reaches, labelled with what the expert would do)',
    )
    add_pipeline_arguments(parser)
    parser.add_argument(
        '--expert-share',
        type=float,
        default=0.0,
        metavar='BETA',
        help="pipeline: share of frames on which the expert's command is executed instead "
        "(DAgger's beta, default 0: the student drives alone)",
    )
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')


def run_record(args: argparse.Namespace) -> int:
    """Run `vla sim record`; return the exit code (1 with the reason on stderr on refusal)."""
    student = None
    try:
        if args.driver == 'expert' and args.expert_share != 0.0:
            raise ValueError('--expert-share needs --driver pipeline (the expert always drives)')
        if args.driver == 'pipeline':
            rig = RigConfig.from_file(args.rig or vla_ros_file(DEFAULT_RIG))
            student = pipeline_driver(args, rig)
        summary = record(
            args.scenario,
            args.episodes,
            args.out,
            rig_path=args.rig,
            seed_start=args.seed_start,
            split=Split(args.split),
            progress=not args.no_progress,
            student=student,
            expert_share=args.expert_share,
        )
    except (RecordError, ValueError, FileNotFoundError) as error:
        print(f'vla sim record: {error}', file=sys.stderr)
        return 1
    finally:
        if student is not None:
            student.close()
    collisions = sum(episode.collided for episode in summary.episodes)
    off_road = sum(episode.off_road for episode in summary.episodes)
    rate = summary.frames / summary.seconds if summary.seconds else 0.0
    print(
        f'recorded {summary.written} episode(s) of {summary.scenario} into {summary.out_dir} '
        f'({summary.frames} frames, {_human(summary.bytes)}, {summary.seconds:.1f} s, '
        f'{rate:.1f} frames/s); skipped {summary.skipped} already recorded; '
        f'{collisions} collision(s), {off_road} off road'
    )
    return 0
