"""`vla student record`: the camera student's data, rendered only where states are kept.

Episodes are drawn as the teacher's are (vla_sim.teacher_data: scenario families weighted to
junctions, intents wider than the scenarios', training wording, spoken speeds). The expert
drives, or with `--teacher-weights` the teacher does, through the monitor and controller, so
the data holds the states a policy reaches and not only the expert's. With `--student-weights`
the camera student drives through the whole pipeline (Learning by Cheating's on-policy stage):
the states its own mistakes lead to. Every `keep_every`-th step is kept
(vla_model.camera_dataset): the cameras rendered at that step and the one before (the temporal
fusion's clip), the ego motion between them, the privileged raster, the ego state and the
episode's instruction; where the expert drove, its own next 3 s too. For the expert and the
teacher the renderer runs only for those two frames, so a kept state costs two renders however
sparse the keeping; the student sees every frame, and its own images are stored.
"""

from __future__ import annotations

import argparse
import random
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vla_model.artifacts import sha256_file
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
    DriverRecipe,
    EpisodeTask,
    TeacherDriving,
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
    from vla_sim.evaluation import Driver
    from vla_sim.pipeline_driver import PipelineDriver

DRIVER_MANIFEST = 'driver.json'
"""Who drives a camera data set's episodes: beside dataset.json, which the readers check."""


@dataclass(frozen=True)
class CameraRecordSettings:
    """How states are sampled."""

    keep_every: int = 5  # keep every n-th simulator step (0.5 s at the 10 Hz simulator)
    counterfactuals: int = 3  # other instructions per state, for the teacher to answer


@dataclass(frozen=True)
class CameraDriverSettings:
    """Who drove the episodes of a camera data set.

    Fixed when the data set is created, so a resumed folder holds one policy's states.
    """

    source: str  # one of CAMERA_SOURCES
    weights_sha256: str  # the teacher's or the student's weights; '' for the expert
    map_prior: bool | None  # whether the student read the map layers; None for the others


@dataclass(frozen=True)
class StudentDriving:
    """The camera student drives through the whole pipeline.

    Built once per worker process (vla_sim.teacher_data.worker_driver): each loads its own
    ONNX Runtime session.
    """

    weights: Path
    weights_sha256: str  # the file is refused if it changed since the data set was created
    map_prior: bool

    def build(self) -> PipelineDriver:
        """Load the student and export it to ONNX (once per set of weights, cached)."""
        from vla_sim.pipeline_driver import PipelineDriver

        return PipelineDriver(
            RigConfig.from_file(default_rig_path()),
            weights=self.weights,
            weights_sha256=self.weights_sha256,
            map_prior=self.map_prior,
            name='student',
        )


def record_camera_episode(
    task: EpisodeTask,
    out_dir: Path,
    config: TeacherConfig,
    settings: CameraRecordSettings,
    driver: Driver | None = None,
) -> int:
    """Drive one episode, render and write its kept states as one shard; return their count.

    `driver`: None (the expert), a TeacherDriver, or a PipelineDriver named 'student'; its
    `name` is the states' source.
    """
    plan = config.plan
    rig = RigConfig.from_file(default_rig_path())
    # The student drives from the cameras: the simulator renders every frame, and the kept
    # states store the very images it saw. The others read the raster: render kept frames only.
    sees_cameras = driver is not None and driver.name == 'student'
    core = SimulationCore(
        get_scenario(task.scenario),
        task.seed,
        rig,
        SimConfig(render=sees_cameras),
        bev_grid=BevGrid.from_model(plan),
        instruction=instruction_for(task.intent, task.target_speed_mps, task.seed),
    )
    renderer = None if sees_cameras else CameraRenderer(rig)
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
            images = frame.images if renderer is None else renderer.render(frame.scene)
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
    driver: Driver | None,
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
    student_weights: Path | None = None,
    map_prior: bool = True,
) -> dict:
    """Record the episodes not yet in `out_dir` over `workers` processes; return counts.

    The expert drives, or the teacher of `teacher_weights`, or the student of `student_weights`
    (with or without the map prior); a folder begun by another driver is refused.
    """
    if teacher_weights is not None and student_weights is not None:
        raise ValueError('the teacher or the student drives, not both')
    settings = settings or CameraRecordSettings()
    rig = RigConfig.from_file(default_rig_path())
    driving: DriverRecipe | None = None
    who = CameraDriverSettings('expert', '', None)
    if teacher_weights is not None:
        driving = TeacherDriving(teacher_weights)
        who = CameraDriverSettings('teacher', sha256_file(teacher_weights), None)
    if student_weights is not None:
        sha256 = sha256_file(student_weights)
        driving = StudentDriving(student_weights, sha256, map_prior)
        who = CameraDriverSettings('student', sha256, map_prior)
    prepare_dataset(out_dir, CameraDatasetSettings.of(TeacherConfig(), rig))
    prepare_dataset(out_dir, who, DRIVER_MANIFEST)
    label = 'camera data' if who.source == 'expert' else f'camera data, {who.source} driving'
    tasks = episode_tasks(episodes, seed_start)
    return record_episodes(
        record_camera_episode, out_dir, tasks, (settings, driving), workers, progress, label
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
    parser.add_argument(
        '--student-weights',
        type=Path,
        help='this camera student (v2 safetensors) drives through the whole pipeline (sync, '
        'ONNX Runtime, monitor, controller): its own states, on-policy',
    )
    parser.add_argument(
        '--map-prior',
        choices=['on', 'off'],
        help='with --student-weights: the student reads the map layers (default on), or not',
    )


def run_student_record(args: argparse.Namespace) -> int:
    """Run `vla student record`."""
    if args.counterfactuals < 0:
        print('vla student record: --counterfactuals must be >= 0', file=sys.stderr)
        return 1
    if args.teacher_weights is not None and args.student_weights is not None:
        print(
            'vla student record: --teacher-weights or --student-weights, not both',
            file=sys.stderr,
        )
        return 1
    if args.map_prior is not None and args.student_weights is None:
        print('vla student record: --map-prior needs --student-weights', file=sys.stderr)
        return 1
    for who, weights in (('teacher', args.teacher_weights), ('student', args.student_weights)):
        if weights is not None and not weights.is_file():
            print(f'vla student record: no {who} weights at {weights}', file=sys.stderr)
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
            args.student_weights,
            args.map_prior != 'off',
        ),
    )
