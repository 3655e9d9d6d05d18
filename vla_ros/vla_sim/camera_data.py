"""`vla student record`: the camera student's data, rendered only where states are kept.

Episodes are drawn as the teacher's are (vla_sim.teacher_data: scenario families weighted to
junctions, intents wider than the scenarios', training wording, spoken speeds). The expert
drives, or with `--teacher-weights` the teacher does, through the monitor and controller, so
the data holds the states a policy reaches and not only the expert's. Every `keep_every`-th
step is kept (vla_model.camera_dataset): the cameras rendered at that step and the one before
(the temporal fusion's clip), the ego motion between them, the privileged raster, the ego state
and the episode's instruction; where the expert drove, its own next 3 s too. The renderer runs
only for those two frames, so a kept state costs two renders however sparse the keeping.
"""

from __future__ import annotations

import argparse
import random
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vla_model.camera_dataset import (
    CAMERA_SOURCES,
    CameraDatasetSettings,
    encode_images,
    write_camera_shard,
)
from vla_model.driving_labels import in_frame_of
from vla_model.model_inputs import relative_motion
from vla_model.privileged_dataset import prepare_dataset
from vla_model.teacher_network import TeacherConfig
from vla_perception.rig import RigConfig, default_rig_path
from vla_sim.bev_ground_truth import BevGrid
from vla_sim.camera_renderer import CameraRenderer
from vla_sim.scenarios import get_scenario
from vla_sim.simulation import SimConfig, SimulationCore
from vla_sim.teacher_data import (
    EpisodeTask,
    TextTable,
    add_recording_arguments,
    counterfactual_instructions,
    ego_state,
    episode_tasks,
    instruction_for,
    record_episodes,
    run_recording,
    teacher_raster,
)

if TYPE_CHECKING:
    from vla_sim.teacher_driver import TeacherDriver


@dataclass(frozen=True)
class CameraRecordSettings:
    """How states are sampled."""

    keep_every: int = 5  # keep every n-th simulator step (0.5 s at the 10 Hz simulator)
    counterfactuals: int = 3  # other instructions per state, for the teacher to answer


def record_camera_episode(
    task: EpisodeTask,
    out_dir: Path,
    config: TeacherConfig,
    settings: CameraRecordSettings,
    driver: TeacherDriver | None = None,
) -> int:
    """Drive one episode, render and write its kept states as one shard; return their count."""
    plan = config.plan
    rig = RigConfig.from_file(default_rig_path())
    core = SimulationCore(
        get_scenario(task.scenario),
        task.seed,
        rig,
        SimConfig(render=False),
        bev_grid=BevGrid.from_model(plan),
        instruction=instruction_for(task.intent, task.target_speed_mps, task.seed),
    )
    renderer = CameraRenderer(rig)
    if driver is not None:
        driver.reset(core)
    keep = settings.keep_every
    rng = random.Random(f'camera-counterfactual/{task.seed}')
    states: list[dict] = []
    poses: list[tuple[float, float, float]] = []
    previous_jpeg: list[bytes] = []
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
            command, rationale = driver.drive(core, frame).command, -1
        if step % keep == 0 or (step + 1) % keep == 0:
            images = renderer.render(frame.scene)
            jpeg = encode_images([images[name] for name in rig.names])
            if step % keep == 0 and previous_jpeg:
                states.append(
                    {
                        'step': step,
                        'raster': teacher_raster(core, frame),
                        'ego_state': ego_state(frame, core.world.time_s, plan),
                        'ego_motion': relative_motion(poses[-2], poses[-1]),
                        'rationale': rationale,
                        'jpeg': previous_jpeg + jpeg,
                        'counterfactuals': counterfactual_instructions(
                            task, rng, settings.counterfactuals
                        ),
                    }
                )
            previous_jpeg = jpeg
        frame = core.step(command)
    if states:
        _write(
            out_dir / task.shard_name, states, np.asarray(poses), core, config, settings, driver
        )
    return len(states)


def _write(
    path: Path,
    states: list[dict],
    poses: np.ndarray,
    core: SimulationCore,
    config: TeacherConfig,
    settings: CameraRecordSettings,
    driver: TeacherDriver | None,
) -> None:
    """Label the kept states with the expert's own future where it drove; write the shard."""
    plan = config.plan
    stride = round(plan.step_s / core.config.step_s)
    trajectories = np.zeros((len(states), plan.horizon_steps, 3), np.float32)
    valid = np.zeros(len(states), bool)
    for index, state in enumerate(states):
        future = state['step'] + stride * np.arange(1, plan.horizon_steps + 1)
        if driver is None and future[-1] < len(poses):
            trajectories[index] = in_frame_of(poses[state['step']], poses[future])
            valid[index] = True
    texts = TextTable()
    own = texts.index(core.instruction)
    others = np.full((len(states), settings.counterfactuals), -1, np.int32)
    ages = np.zeros(others.shape, np.float32)
    for row, state in enumerate(states):
        for column, (instruction, age) in enumerate(state['counterfactuals']):
            others[row, column], ages[row, column] = texts.index(instruction), age
    write_camera_shard(
        path,
        np.stack([s['raster'] for s in states]),
        [s['jpeg'] for s in states],
        config.channels,
        ego_state=np.stack([s['ego_state'] for s in states]),
        ego_motion=np.stack([s['ego_motion'] for s in states]).astype(np.float32),
        text_index=np.full(len(states), own, np.int32),
        counterfactual_index=others,
        counterfactual_age=ages,
        trajectory=trajectories,
        trajectory_valid=valid,
        rationale=np.asarray([s['rationale'] for s in states], np.int8),
        source=np.full(len(states), CAMERA_SOURCES.index(driver.name if driver else 'expert')),
        texts=texts.texts,
        intents=texts.intents,
    )


def record_camera_dataset(
    out_dir: Path,
    episodes: int,
    seed_start: int,
    workers: int,
    settings: CameraRecordSettings | None = None,
    progress: bool = True,
    teacher_weights: Path | None = None,
) -> dict:
    """Record the episodes not yet in `out_dir` over `workers` processes; return counts."""
    settings = settings or CameraRecordSettings()
    rig = RigConfig.from_file(default_rig_path())
    prepare_dataset(out_dir, CameraDatasetSettings.of(TeacherConfig(), rig))
    label = 'camera data, teacher driving' if teacher_weights else 'camera data'
    tasks = episode_tasks(episodes, seed_start)
    return record_episodes(
        record_camera_episode,
        out_dir,
        tasks,
        (settings, teacher_weights),
        workers,
        progress,
        label,
    )


def add_student_record_arguments(parser: argparse.ArgumentParser) -> None:
    """Add `vla student record`'s arguments."""
    add_recording_arguments(parser, episodes=300, seed_start=300_000, keep_every=5)
    parser.add_argument(
        '--counterfactuals', type=int, default=3, help='other instructions stored per state'
    )
    parser.add_argument(
        '--teacher-weights',
        type=Path,
        help='this teacher drives (through the monitor and controller) instead of the expert',
    )


def run_student_record(args: argparse.Namespace) -> int:
    """Run `vla student record`."""
    if args.counterfactuals < 0:
        print('vla student record: --counterfactuals must be >= 0', file=sys.stderr)
        return 1
    if args.teacher_weights is not None and not args.teacher_weights.is_file():
        print(f'vla student record: no teacher weights at {args.teacher_weights}', file=sys.stderr)
        return 1
    return run_recording(
        'vla student record',
        args,
        (),
        lambda: record_camera_dataset(
            args.out_dir,
            args.episodes,
            args.seed_start,
            args.workers,
            CameraRecordSettings(args.keep_every, args.counterfactuals),
            not args.no_progress,
            args.teacher_weights,
        ),
    )
