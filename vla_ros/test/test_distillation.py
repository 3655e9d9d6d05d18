"""`vla distill`: model v2's stage 2 in order, resumed without redoing work, refusing bad folders.

Most tests replace the three steps it runs (camera recording, student training, map IoU; each
tested on real data in test_student.py) by recorders, so the order, the arguments each step gets
and what a resumed run skips are checked quickly; the last runs a tiny stage 2 for real.
"""

import json
import re
import shutil
import subprocess
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from repo_paths import REPO_ROOT, run_vla
from vla_model.artifacts import load_weights, save_teacher
from vla_model.student_network import NeuralMapStudent
from vla_model.student_training import StudentTrainConfig, StudentTrainResult
from vla_model.teacher_network import PrivilegedTeacher, TeacherConfig
from vla_model.teacher_training import TeacherTrainConfig
from vla_tools import distillation
from vla_tools.distillation import RECIPE, DistillPlan, Recording, distill, steps_table

CONFIG = Path(__file__).resolve().parents[1] / 'config'


class StageRecorder:
    """Stands in for the three steps: each call is logged, and leaves what the real one would."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        self.calls: list[tuple] = []
        monkeypatch.setattr(distillation, 'record_camera_dataset', self.record)
        monkeypatch.setattr(distillation, 'train_student', self.train)
        monkeypatch.setattr(distillation, 'measure_map_iou', self.measure)

    def record(
        self,
        out_dir,
        episodes,
        seed_start,
        workers,
        settings,
        progress,
        teacher_weights,
        student_weights,
        map_prior,
    ):
        """Log who drives which folder; leave the folder."""
        call = ('record', out_dir.name, episodes, seed_start)
        if teacher_weights is not None:
            call += ('teacher', teacher_weights)
        elif student_weights is not None:
            call += ('student', student_weights, map_prior)
        self.calls.append(call)
        out_dir.mkdir(parents=True, exist_ok=True)
        return {'episodes': episodes, 'recorded': episodes, 'samples': 10 * episodes}

    def train(self, run: StudentTrainConfig, progress: bool) -> StudentTrainResult:
        """Log the run; leave its weights."""
        self.calls.append(('train', Path(run.out_dir).name, Path(run.init_weights or '.')))
        weights = Path(run.out_dir) / 'student.safetensors'
        weights.parent.mkdir(parents=True, exist_ok=True)
        weights.write_bytes(f'student of {run.out_dir}'.encode())
        return StudentTrainResult(weights, 'sha', run.steps, {'expert': 5}, 1.0, {})

    def measure(self, weights: Path, data: list[Path], progress: bool) -> dict:
        """Log whose map is measured on what."""
        self.calls.append(('map', weights.parent.name, [d.name for d in data]))
        return {'states': 3, 'iou': {'on': {'vehicle': {'0-30 m': 0.5}}}}


def test_the_recipes_run_files_train_on_its_recordings_from_the_last_teacher_round():
    first = StudentTrainConfig.from_file(CONFIG / RECIPE.first_run.removeprefix('config/'))
    second = StudentTrainConfig.from_file(CONFIG / RECIPE.on_policy_run.removeprefix('config/'))
    last_teacher = TeacherTrainConfig.from_file(CONFIG / 'train_teacher_dagger2.yaml')
    assert Path(first.teacher_weights) == Path(last_teacher.out_dir) / 'teacher.safetensors'
    assert second.teacher_weights == first.teacher_weights

    def folders(run):
        return {str(Path(d).relative_to(CONFIG)) for d in run.data}

    assert folders(first) == {r.folder for r in RECIPE.demonstrations}
    assert folders(second) == folders(first) | {r.folder for r in RECIPE.on_policy}
    assert Path(second.init_weights) == Path(first.out_dir) / 'student.safetensors'
    assert second.learning_rate < first.learning_rate and 0.0 < first.map_prior_share < 1.0
    assert {r.map_prior for r in RECIPE.on_policy} == {True, False}
    seeds = [r.seed_start for r in (*RECIPE.demonstrations, RECIPE.heldout, *RECIPE.on_policy)]
    assert min(seeds) >= 1000, 'seeds 0-999 are the evaluation'


def test_stage_two_runs_in_order_and_a_rerun_measures_nothing_again(monkeypatch, tmp_path):
    stages = StageRecorder(monkeypatch)
    given = tmp_path / 'given.safetensors'
    given.write_bytes(b'teacher')
    data = tmp_path / 'data'
    report = distill(data, given, progress=False)

    teacher = data / 'teacher' / 'train2' / 'teacher.safetensors'
    first = data / 'student' / 'train0' / 'student.safetensors'
    assert teacher.read_bytes() == b'teacher'
    assert stages.calls == [
        ('record', 'cameras_expert', 250, 300_000),
        ('record', 'cameras_teacher', 150, 400_000, 'teacher', teacher),
        ('record', 'cameras_heldout', 40, 500_000),
        ('train', 'train0', Path('.')),
        ('map', 'train0', ['cameras_heldout']),
        ('record', 'cameras_student_r1_off', 75, 600_000, 'student', first, False),
        ('record', 'cameras_student_r1_on', 75, 700_000, 'student', first, True),
        ('train', 'train1', first),
        ('map', 'train1', ['cameras_heldout']),
    ]
    assert (data / 'train_student_v2.yaml').read_bytes() == (
        CONFIG / 'train_student_v2.yaml'
    ).read_bytes()
    written = json.loads((data / 'distill.json').read_text())
    assert [s['step'] for s in written['steps']] == [s['step'] for s in report['steps']]
    assert written['steps'][0]['bytes'] == 0 and written['steps'][0]['samples_now'] == 2500
    assert len(report['steps']) == 9 and '| train student/train0 |' in steps_table(report)
    measured = json.loads((data / 'eval' / 'student_map_iou.json').read_text())
    assert measured['states'] == 3 and measured['weights_sha256']

    stages.calls.clear()
    distill(data, teacher, progress=False)  # resumed: the maps are measured already
    assert [call[0] for call in stages.calls].count('map') == 0
    assert [call[0] for call in stages.calls].count('record') == 5


def test_a_step_cut_off_keeps_its_time_and_a_resumed_run_adds_to_it(monkeypatch, tmp_path):
    stages = StageRecorder(monkeypatch)
    monkeypatch.setattr(distillation, 'HEARTBEAT_S', 0.05)
    given = tmp_path / 'given.safetensors'
    given.write_bytes(b'teacher')
    data = tmp_path / 'data'
    ledger = data / 'distill.json'
    seen_while_training = []

    def cut_training(run, progress):
        """Train for 0.3 s, reading the ledger as the heartbeat writes it, then be cut off."""
        time.sleep(0.3)
        seen_while_training.append(json.loads(ledger.read_text())['steps'][-1])
        raise KeyboardInterrupt  # the session ends

    monkeypatch.setattr(distillation, 'train_student', cut_training)
    with pytest.raises(KeyboardInterrupt):
        distill(data, given, progress=False)
    (running,) = seen_while_training
    cut = {step['step']: step for step in json.loads(ledger.read_text())['steps']}
    (spent,) = cut['train student/train0']['wall_s_by_run']  # written when it was cut off
    assert running['step'] == 'train student/train0' and running['running']
    # The heartbeat wrote the step's time so far while it ran, before it was cut off.
    assert 0.1 <= running['wall_s_by_run'][0] <= spent and spent >= 0.3
    assert len(cut) == 4 and all(len(step['wall_s_by_run']) == 1 for step in cut.values())

    monkeypatch.setattr(distillation, 'train_student', stages.train)  # resumed, to the end
    report = distill(data, given, progress=False)
    steps = {step['step']: step for step in report['steps']}
    first = steps['train student/train0']['wall_s_by_run']
    assert len(first) == 2 and first[0] == spent
    assert steps['train student/train0']['wall_s'] == pytest.approx(sum(first), abs=0.1)
    assert len(steps['record student/cameras_expert (expert)']['wall_s_by_run']) == 2
    assert len(steps['train student/train1']['wall_s_by_run']) == 1  # not begun before
    assert json.loads(ledger.read_text())['steps'] == report['steps']


def test_a_kept_run_file_is_trained_with_even_if_the_packaged_one_changed(
    monkeypatch, tmp_path, capsys
):
    stages = StageRecorder(monkeypatch)
    given = tmp_path / 'given.safetensors'
    given.write_bytes(b'teacher')
    data = tmp_path / 'data'
    data.mkdir()
    kept = (CONFIG / 'train_student_v2.yaml').read_text().replace('steps: 3000', 'steps: 7')
    (data / 'train_student_v2.yaml').write_text(kept)
    report = distill(data, given, progress=False)
    assert next(s for s in report['steps'] if s['step'] == 'train student/train0')['steps'] == 7
    assert (data / 'train_student_v2.yaml').read_text() == kept
    assert 'which differs from' in capsys.readouterr().err
    assert stages.calls


def test_another_teacher_a_bad_plan_or_a_map_of_other_weights_is_refused(monkeypatch, tmp_path):
    stages = StageRecorder(monkeypatch)
    data = tmp_path / 'data'
    (data / 'teacher' / 'train2').mkdir(parents=True)
    (data / 'teacher' / 'train2' / 'teacher.safetensors').write_bytes(b'trained here')
    given = tmp_path / 'given.safetensors'
    given.write_bytes(b'another')
    with pytest.raises(ValueError, match='is another teacher than .*give another DATA_DIR'):
        distill(data, given, progress=False)
    with pytest.raises(FileNotFoundError, match='no teacher weights at'):
        distill(data, tmp_path / 'missing.safetensors', progress=False)
    assert (data / 'teacher' / 'train2' / 'teacher.safetensors').read_bytes() == b'trained here'

    unchained = tmp_path / 'unchained.yaml'
    unchained.write_text(
        (CONFIG / 'train_student_v2_r1.yaml').read_text().replace('student/train0/', 'other/')
    )
    plan = DistillPlan(RECIPE.demonstrations, RECIPE.heldout, RECIPE.first_run, (), str(unchained))
    with pytest.raises(ValueError, match='not from the student that drives its data'):
        distill(tmp_path / 'other', given, plan, progress=False)
    with pytest.raises(ValueError, match='driver must be one of'):
        Recording('student/x', 1, 300_000, 'pedestrian')
    with pytest.raises(ValueError, match='the student drives the on-policy recordings, and only'):
        DistillPlan(RECIPE.on_policy, RECIPE.heldout, RECIPE.first_run, (), RECIPE.on_policy_run)
    assert stages.calls == []

    fresh = tmp_path / 'fresh'
    (fresh / 'eval').mkdir(parents=True)
    (fresh / 'eval' / 'student_map_iou.json').write_text(json.dumps({'weights_sha256': 'other'}))
    with pytest.raises(ValueError, match='measured other weights'):
        distill(fresh, given, progress=False)
    assert stages.calls[-1][0] == 'train'

    broken = tmp_path / 'broken'
    broken.mkdir()
    (broken / 'distill.json').write_text('{"steps": [')  # not the ledger's own (it renames)
    stages.calls.clear()
    with pytest.raises(ValueError, match=r'distill.json is not JSON \(.*\): move it away'):
        distill(broken, given, progress=False)
    assert stages.calls == []


def test_the_command_and_the_recipe_refuse_a_folder_holding_another_teacher(tmp_path):
    given, other = tmp_path / 'given.safetensors', tmp_path / 'other.safetensors'
    given.write_bytes(b'teacher of another machine')
    other.write_bytes(b'teacher trained in this folder')
    data = tmp_path / 'data'
    (data / 'teacher' / 'train2').mkdir(parents=True)
    shutil.copy(other, data / 'teacher' / 'train2' / 'teacher.safetensors')
    result = run_vla('distill', str(data), '--teacher', str(given), '--no-progress')
    assert result.returncode == 1
    assert result.stderr.startswith('vla distill: ') and 'is another teacher than' in result.stderr
    recipe = REPO_ROOT / 'scripts' / 'train_default_model.sh'
    result = subprocess.run(
        [recipe, '--teacher', str(given), str(data)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 1
    assert 'is another teacher than' in result.stderr and 'give another DATA_DIR' in result.stderr
    assert (data / 'teacher' / 'train2' / 'teacher.safetensors').read_bytes() == other.read_bytes()
    assert not (data / 'student').exists()
    result = run_vla('distill', str(data), '--teacher', str(given), '--workers', '0')
    assert result.returncode == 1 and '--workers must be >= 1' in result.stderr


@pytest.mark.timeout(600)  # 116-256 s on the 2-vCPU VM, over 300 s beside a training job
def test_a_tiny_stage_two_runs_for_real_and_a_rerun_redoes_nothing(tmp_path):
    """Every step real (one episode each, two training steps): the command's path end to end."""
    torch.manual_seed(0)
    teacher = tmp_path / 'teacher.safetensors'
    save_teacher(PrivilegedTeacher(TeacherConfig()).eval(), teacher)
    runs = {}
    for name in ('train_student_v2.yaml', 'train_student_v2_r1.yaml'):
        text = (CONFIG / name).read_text()
        for key, value in (('steps', 2), ('batch_size', 2), ('warmup_steps', 1)):
            text = re.sub(rf'^{key}: .*$', f'{key}: {value}', text, flags=re.MULTILINE)
        runs[name] = tmp_path / 'config' / name
        runs[name].parent.mkdir(exist_ok=True)
        runs[name].write_text(text)
    plan = DistillPlan(
        tuple(replace(r, episodes=1) for r in RECIPE.demonstrations),
        replace(RECIPE.heldout, episodes=1),
        str(runs['train_student_v2.yaml']),
        tuple(replace(r, episodes=1) for r in RECIPE.on_policy),
        str(runs['train_student_v2_r1.yaml']),
    )
    data = tmp_path / 'data'
    first = distill(data, teacher, plan, workers=1, progress=False)
    again = distill(data, teacher, plan, workers=1, progress=False)

    recorded = [s for s in first['steps'] if s['step'].startswith('record')]
    assert [s['recorded_now'] for s in recorded] == [1] * 5
    assert all(s['samples_now'] > 0 and s['bytes'] > 0 for s in recorded)
    assert [s['recorded_now'] for s in again['steps'] if 'recorded_now' in s] == [0] * 5
    trained = [s for s in first['steps'] if s['step'].startswith('train')]
    assert [s['sha256'] for s in trained] == [
        s['sha256'] for s in again['steps'] if s['step'].startswith('train')
    ]
    assert set(trained[1]['states']) == {'expert', 'teacher', 'student'}
    weights = data / 'student' / 'train1' / 'student.safetensors'
    student = load_weights(weights, trained[1]['sha256'])
    assert isinstance(student, NeuralMapStudent)
    maps = json.loads((data / 'eval' / 'student_r1_map_iou.json').read_text())
    assert set(maps['iou']) == {'on', 'off'} and maps['weights_sha256'] == trained[1]['sha256']
