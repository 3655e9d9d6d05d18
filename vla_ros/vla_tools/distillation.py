"""`vla distill DATA_DIR --teacher WEIGHTS`: model v2's stage 2, the camera student, distilled.

Learning by Cheating's second stage (Chen et al., CoRL 2019), as docs/TRAINING.md ("Model v2,
stage 2") describes it: the expert and the privileged teacher drive episodes whose kept states
are rendered; the camera student distils from the teacher on them; its neural map is measured
on held-out states; then the student drives episodes of its own through the whole pipeline
(half map-free) and is fine-tuned on every data set, the teacher labelling each state. The
closed-loop evaluation of the students is not part of it (`vla sim eval --driver pipeline`;
scripts/train_default_model.sh runs both).

Every step resumes: recorded episodes are skipped, training continues from its last checkpoint,
a map already measured is not measured again. The teacher is copied to where the run files read
it (`teacher_weights`); a data folder holding another teacher is refused, and the run files are
copied into the data folder once, so a resumed run trains with the file it began with. What
each step did and took is written to `DATA_DIR/distill.json` as it begins and ends, and every
HEARTBEAT_S while it runs; a step that runs again (resumed, or only checked) adds its time to
what the file holds, so the wall time of a stage cut by a session's end stays measured.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from vla_model.artifacts import sha256_file
from vla_model.neural_map_eval import iou_table, measure_map_iou
from vla_model.student_training import STUDENT_WEIGHTS, StudentTrainConfig, train_student
from vla_ros.install_paths import vla_ros_file
from vla_ros.reports import markdown_table, write_json
from vla_sim.camera_data import CameraRecordSettings, record_camera_dataset

STUDENT_DRIVERS = ('expert', 'teacher', 'student')


HEARTBEAT_S = 30.0  # how often the step under way is written to distill.json


@dataclass(frozen=True)
class Recording:
    """One camera data set: who drives how many episodes, from which seed."""

    folder: str  # relative to the data folder
    episodes: int
    seed_start: int
    driver: str = 'expert'  # one of STUDENT_DRIVERS; the student is the first round's
    map_prior: bool = True  # whether the driving student reads the map layers

    def __post_init__(self) -> None:
        if self.driver not in STUDENT_DRIVERS:
            raise ValueError(f'{self.folder}: driver must be one of {STUDENT_DRIVERS}')


@dataclass(frozen=True)
class DistillPlan:
    """What stage 2 records and trains, in order (RECIPE is the shipped one)."""

    demonstrations: tuple[Recording, ...]  # the first student's data (expert and teacher)
    heldout: Recording  # the states its map is measured on
    first_run: str  # its run file, packaged (vla_ros_file) or a path
    on_policy: tuple[Recording, ...]  # the first student drives
    on_policy_run: str  # the fine-tuning run file
    settings: CameraRecordSettings = field(default_factory=CameraRecordSettings)

    def __post_init__(self) -> None:
        first = (*self.demonstrations, self.heldout)
        if any(r.driver == 'student' for r in first) or any(
            r.driver != 'student' for r in self.on_policy
        ):
            raise ValueError('the student drives the on-policy recordings, and only those')


RECIPE = DistillPlan(
    demonstrations=(
        Recording('student/cameras_expert', 250, 300_000),
        Recording('student/cameras_teacher', 150, 400_000, 'teacher'),
    ),
    heldout=Recording('student/cameras_heldout', 40, 500_000),
    first_run='config/train_student_v2.yaml',
    on_policy=(
        Recording('student/cameras_student_r1_off', 75, 600_000, 'student', map_prior=False),
        Recording('student/cameras_student_r1_on', 75, 700_000, 'student', map_prior=True),
    ),
    on_policy_run='config/train_student_v2_r1.yaml',
)
"""Model v2's stage 2 (seeds 300000+; evaluation uses 0-999)."""


def place_teacher(given: Path, target: Path) -> None:
    """Copy the teacher to where the run files read it; refuse a folder holding another one."""
    if not given.is_file():
        raise FileNotFoundError(f'no teacher weights at {given}')
    if target.is_file():
        if target.resolve() != given.resolve() and sha256_file(target) != sha256_file(given):
            raise ValueError(
                f'{target} is another teacher than {given}: give another DATA_DIR (nothing '
                'trained is overwritten)'
            )
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(given, target)


def run_file_in(data_dir: Path, template: str) -> StudentTrainConfig:
    """Copy the run file into `data_dir` unless one is there, and read that copy.

    A copy already there is kept, even if the packaged file has changed since: a resumed
    training continues with the values it began with.
    """
    source = Path(template) if Path(template).is_file() else vla_ros_file(template)
    copy = data_dir / source.name
    if not copy.is_file():
        shutil.copyfile(source, copy)
    elif copy.read_bytes() != source.read_bytes():
        print(f'vla distill: training with {copy}, which differs from {source}', file=sys.stderr)
    return StudentTrainConfig.from_file(copy)


def folder_bytes(folder: Path) -> int:
    """Return the bytes of the files in `folder` (a data set's volume on disk)."""
    return sum(path.stat().st_size for path in folder.rglob('*') if path.is_file())


class StepLedger:
    """The report's steps, written while they run, so that a run cut off keeps what it spent.

    A step's wall time sums every run that worked on it (`wall_s_by_run`): a session's end
    stops a three-hour stage 2 midway, and the run that resumes it finishes in minutes. The
    step under way is written every HEARTBEAT_S with its time so far, so a run ended without
    warning loses at most that much of it.
    """

    def __init__(self, path: Path, report: dict) -> None:
        self.path, self.report = path, report
        try:
            earlier = json.loads(path.read_text(encoding='utf-8')) if path.is_file() else {}
        except json.JSONDecodeError as error:
            raise ValueError(f'{path} is not JSON ({error}): move it away to resume') from error
        self.earlier = {
            s['step']: s.get('wall_s_by_run', [s.get('wall_s', 0.0)])
            for s in earlier.get('steps', [])
        }
        self.running: tuple[str, float] | None = None
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        threading.Thread(target=self._beat, daemon=True).start()

    def begin(self, name: str) -> None:
        """Start timing step `name`."""
        with self.lock:
            self.running = (name, time.monotonic())
            self._write()

    def end(self, summary: str, **details: object) -> None:
        """End the step under way: add it to the report with what it holds and its times."""
        with self.lock:
            name, start = self.running
            runs = self._runs(name, start)
            self.running = None
            self.report['steps'].append(
                {
                    'step': name,
                    'summary': summary,
                    'wall_s': round(sum(runs), 1),
                    'wall_s_by_run': runs,
                    **details,
                }
            )
            self._write()

    def close(self) -> None:
        """Write the step under way, if any (a step that raised), and stop the heartbeat."""
        self.stopped.set()
        with self.lock:
            self._write()

    def _runs(self, name: str, start: float) -> list[float]:
        return [*self.earlier.get(name, []), round(time.monotonic() - start, 1)]

    def _beat(self) -> None:
        while not self.stopped.wait(HEARTBEAT_S):
            with self.lock:
                if self.running is not None:
                    self._write()

    def _write(self) -> None:
        steps = list(self.report['steps'])
        if self.running is not None:
            name, start = self.running
            runs = self._runs(name, start)
            steps.append({'step': name, 'running': True, 'wall_s_by_run': runs})
        named = {step['step'] for step in steps}
        steps += [  # what earlier runs spent on steps this run has not reached yet
            {'step': name, 'wall_s': round(sum(runs), 1), 'wall_s_by_run': runs}
            for name, runs in self.earlier.items()
            if name not in named
        ]
        # Written whole, then renamed: a run killed mid-write leaves the last complete file.
        partial = self.path.with_suffix('.partial')
        partial.write_text(json.dumps({**self.report, 'steps': steps}, indent=2), encoding='utf-8')
        partial.replace(self.path)


class Distillation:
    """Stage 2 over one data folder: each step resumes, and is reported with its wall time."""

    def __init__(self, data_dir: Path, plan: DistillPlan, workers: int, progress: bool):
        self.data_dir = data_dir
        self.plan = plan
        self.workers = workers
        self.progress = progress
        self.report: dict = {'data_dir': str(data_dir), 'steps': []}
        self.ledger = StepLedger(data_dir / 'distill.json', self.report)

    def record(self, recording: Recording, teacher: Path, student: Path | None = None) -> None:
        """Record the episodes of `recording` not yet in its folder."""
        self.ledger.begin(f'record {recording.folder} ({recording.driver})')
        out_dir = self.data_dir / recording.folder
        counts = record_camera_dataset(
            out_dir,
            recording.episodes,
            recording.seed_start,
            self.workers,
            self.plan.settings,
            self.progress,
            teacher_weights=teacher if recording.driver == 'teacher' else None,
            student_weights=student if recording.driver == 'student' else None,
            map_prior=recording.map_prior,
        )
        size = folder_bytes(out_dir)
        self.ledger.end(
            f'{counts["episodes"]} episodes ({counts["recorded"]} now), {size / 1e6:.0f} MB',
            driver=recording.driver,
            episodes=counts['episodes'],
            recorded_now=counts['recorded'],
            samples_now=counts['samples'],
            bytes=size,
        )

    def train(self, run: StudentTrainConfig) -> Path:
        """Train (or resume, or only reload) a student; return its weights."""
        self.ledger.begin(f'train {self.name_of(Path(run.out_dir))}')
        result = train_student(run, progress=self.progress)
        self.ledger.end(
            f'{sum(result.states.values())} states, {result.steps} steps',
            states=result.states,
            steps=result.steps,
            sha256=result.sha256,
        )
        return result.weights

    def measure_map(self, weights: Path, name: str) -> None:
        """Measure the map of `weights` on the held-out states, unless measured already."""
        self.ledger.begin(f'map IoU of {name}')
        path = self.data_dir / 'eval' / f'{name}_map_iou.json'
        sha256 = sha256_file(weights)
        if path.is_file():
            measured = json.loads(path.read_text(encoding='utf-8'))
            if measured.get('weights_sha256', sha256) != sha256:
                raise ValueError(
                    f'{path} measured other weights than {weights}: move it away to measure these'
                )
        else:
            heldout = [self.data_dir / self.plan.heldout.folder]
            measured = {
                'weights_sha256': sha256,
                **measure_map_iou(weights, heldout, self.progress),
            }
            path.parent.mkdir(parents=True, exist_ok=True)
            write_json(path, measured)
        self.ledger.end(
            f'{measured["states"]} held-out states',
            json=str(path),
            **measured,
        )

    def name_of(self, path: Path) -> str:
        """Return `path` relative to the data folder where it is inside it."""
        return (
            str(path.relative_to(self.data_dir))
            if path.is_relative_to(self.data_dir)
            else str(path)
        )


def distill(
    data_dir: Path,
    teacher: Path,
    plan: DistillPlan = RECIPE,
    workers: int = 2,
    progress: bool = True,
) -> dict:
    """Run stage 2 in `data_dir` from the teacher of `teacher`; return the report.

    The run files are checked against each other before anything is recorded: the on-policy
    run must read the same teacher and start from the student that drove its data.
    """
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    first_run = run_file_in(data_dir, plan.first_run)
    second_run = run_file_in(data_dir, plan.on_policy_run)
    placed = Path(first_run.teacher_weights)
    first = Path(first_run.out_dir) / STUDENT_WEIGHTS
    if Path(second_run.teacher_weights) != placed:
        raise ValueError(
            f'{plan.on_policy_run} reads another teacher ({second_run.teacher_weights}) than '
            f'{plan.first_run} ({placed})'
        )
    if Path(second_run.init_weights or '.') != first:
        raise ValueError(
            f'{plan.on_policy_run} starts from {second_run.init_weights or "nothing"}, not from '
            f'the student that drives its data ({first})'
        )
    place_teacher(teacher, placed)
    steps = Distillation(data_dir, plan, workers, progress)
    steps.report['teacher'] = {'weights': str(placed), 'sha256': sha256_file(placed)}
    try:
        for recording in (*plan.demonstrations, plan.heldout):
            steps.record(recording, placed)
        steps.measure_map(steps.train(first_run), 'student')
        for recording in plan.on_policy:
            steps.record(recording, placed, student=first)
        steps.measure_map(steps.train(second_run), 'student_r1')
    finally:
        steps.ledger.close()
    return steps.report


def steps_table(report: dict) -> str:
    """Return a Markdown table: each step, what it holds, its wall time."""
    rows = [(s['step'], s['summary'], f'{s["wall_s"]:.0f} s') for s in report['steps']]
    return markdown_table(('step', 'data', 'wall'), rows)


def add_distill_arguments(parser: argparse.ArgumentParser) -> None:
    """Add `vla distill`'s arguments."""
    parser.add_argument('data_dir', type=Path, help='data folder (created, or resumed)')
    parser.add_argument(
        '--teacher',
        type=Path,
        required=True,
        help="the privileged teacher's weights (stage 1: vla teacher train)",
    )
    parser.add_argument('--workers', type=int, default=2, help='recording processes (default 2)')
    parser.add_argument('--no-progress', action='store_true', help='no progress bars')


def run_distill(args: argparse.Namespace) -> int:
    """Run `vla distill`; bad input is one line on stderr and exit code 1."""
    from vla_model.artifacts import ArtifactError
    from vla_model.privileged_dataset import DatasetError

    if args.workers < 1:
        print('vla distill: --workers must be >= 1', file=sys.stderr)
        return 1
    try:
        report = distill(
            args.data_dir, args.teacher, workers=args.workers, progress=not args.no_progress
        )
    except (FileNotFoundError, ValueError, DatasetError, ArtifactError) as error:
        print(f'vla distill: {error}', file=sys.stderr)
        return 1
    print(steps_table(report))
    print(f'what each step did and took: {args.data_dir / "distill.json"}')
    for step in report['steps']:
        if 'iou' in step:
            print(f'\n{step["step"]} ({step["states"]} held-out states):')
            print(iou_table(step['iou']))
    return 0
