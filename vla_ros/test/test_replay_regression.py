"""`vla replay-test`: the cores replayed over the committed bags give the committed references."""

import argparse
import copy
import json
import shutil
from pathlib import Path

import pytest

from repo_paths import run_vla
from vla_ros.install_paths import vla_ros_file
from vla_tools.cli import main
from vla_tools.replay_command import pipeline_parameters
from vla_tools.replay_regression import (
    BACKEND,
    CASES,
    CORES,
    NODES,
    REFERENCE_DIR,
    Record,
    bag_digest,
    bag_path,
    check,
    compare,
    describe,
    read_reference,
    replay,
    update,
)

REFERENCES = vla_ros_file(REFERENCE_DIR)
MODEL_FREE = tuple(core for core in CORES if not core.uses_model)
MONITOR = next(core for core in CORES if core.name == 'monitor')


@pytest.fixture(scope='module')
def params() -> dict[str, dict[str, object]]:
    """Return the replayed nodes' parameters as the pipeline bring-up sets them (shipped model)."""
    return pipeline_parameters(argparse.Namespace(weights=None, backend=BACKEND), NODES)


@pytest.fixture
def references(tmp_path: Path) -> Path:
    """Copy the committed inputs and references for a test to change."""
    folder = tmp_path / REFERENCE_DIR
    shutil.copytree(REFERENCES, folder)
    return folder


def refusal(capsys: pytest.CaptureFixture, *args: str) -> str:
    """Run `vla replay-test` in this process; return its one-line refusal."""
    assert main(['replay-test', '--no-progress', *args]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert 'Traceback' not in err
    return err


def test_the_cores_give_the_committed_outputs():
    result = run_vla('replay-test', '--no-progress')
    assert result.returncode == 0, result.stdout + result.stderr
    for core in CORES:
        assert f'messages match {REFERENCES / core.file_name}' in result.stdout


def test_the_inputs_cover_the_cases():
    monitor = read_reference(REFERENCES / MONITOR.file_name, MONITOR.name)
    states = {case.name: set() for case in CASES}
    failing: dict[str, set[str]] = {case.name: set() for case in CASES}
    for record in monitor.records:
        if record.topic == '/vla/safety_status':
            states[record.case].add(record.fields['state'])
            failing[record.case] |= {
                name.split('.', 1)[1].rsplit('.', 1)[0]
                for name, value in record.fields.items()
                if name.endswith('.verdict') and value != 'PASS'
            }
    assert states['nominal'] == {'NOMINAL'} and not failing['nominal']
    assert 'sensors.cameras' in failing['camera_dropout']
    assert 'DEGRADED' in states['camera_dropout']
    assert 'collision.rss' in failing['cut_in']
    assert 'freshness.odometry' in failing['stale_odometry']
    assert 'MINIMAL_RISK' in states['stale_odometry']
    assert {'sanity.finite', 'kinematics.speed_limit'} <= failing['bad_plan']
    control = read_reference(REFERENCES / 'control.json', 'control').records
    stale = [r.fields['velocity'] for r in control if r.case == 'stale_odometry']
    assert 0.0 in stale and stale[-1] > 20.0  # the controller stops without odometry, then drives
    stamps = [r.stamp_ns for r in control if r.case == 'nominal']
    assert {b - a for a, b in zip(stamps, stamps[1:], strict=False)} == {33_333_333}  # 30 Hz
    size = sum(f.stat().st_size for case in CASES for f in bag_path(REFERENCES, case).iterdir())
    assert size < 3_000_000


def test_a_changed_monitor_threshold_is_named_and_update_accepts_it(
    params: dict[str, dict[str, object]], references: Path
):
    changed = copy.deepcopy(params)
    changed['safety_monitor_node']['limits.max_longitudinal_jerk_mps3'] = 0.1  # from 4.13
    records = replay(references, changed, None)
    reports = {}
    for core in MODEL_FREE:
        reference = read_reference(references / core.file_name, core.name)
        got = [record for record in records if record.topic in core.topics]
        differences = compare(core, reference.records, got)
        reports[core.name] = describe(core, references / core.file_name, differences, len(got))
    print('\n'.join(line for lines in reports.values() for line in lines))
    monitor, cycle = '\n'.join(reports['monitor']), 'nominal /vla/safety_status @ 2.500 s  '
    assert f'{cycle}check.kinematics.jerk.limit: expected 4.13, got 0.1' in monitor
    assert f'{cycle}check.kinematics.jerk.verdict: expected PASS, got DEGRADE' in monitor
    assert f'{cycle}state: expected NOMINAL, got DEGRADED' in monitor
    assert 'differ from' in reports['control'][0]  # the clamped trajectories are followed
    assert 'messages match' in reports['sync'][0]  # sync does not see the monitor

    digests = {case.name: bag_digest(references, case) for case in CASES}
    lines = update(references, MODEL_FREE, records, digests, None).lines
    assert any(line.startswith('monitor: wrote') for line in lines)
    assert any(line.startswith('control: wrote') for line in lines)
    assert any('check.kinematics.jerk.limit' in line for line in lines)
    assert any(line.startswith('sync: ') and 'unchanged' in line for line in lines)
    updated = {core.name: read_reference(references / core.file_name, core.name) for core in CORES}
    assert check(references, MODEL_FREE, records, updated).passed


def test_compare_within_tolerances_and_names_the_first_index():
    def record(fields: dict) -> Record:
        return Record('case', '/vla/trajectory', 1_500_000_000, fields)

    nan = float('nan')
    expected = record({'x': [1.0, 2.0], 'lead_distance_m': nan, 'origin': 'MODEL'})
    close = record({'x': [1.0 + 5e-7, 2.0], 'lead_distance_m': nan, 'origin': 'MODEL'})
    assert compare(MONITOR, [expected], [close]) == []
    far = record({'x': [1.0, 2.1], 'lead_distance_m': 3.0, 'origin': 'COMFORTABLE_STOP'})
    lines = [str(d) for d in compare(MONITOR, [expected], [far])]
    assert lines == [
        'case /vla/trajectory @ 1.500 s  x[1]: expected 2.0, got 2.1',
        'case /vla/trajectory @ 1.500 s  lead_distance_m: expected nan, got 3.0',
        'case /vla/trajectory @ 1.500 s  origin: expected MODEL, got COMFORTABLE_STOP',
    ]
    assert [str(d) for d in compare(MONITOR, [expected], [])] == [
        'case /vla/trajectory @ 1.500 s  (message): expected published, got not published'
    ]


def test_a_reference_of_another_format_or_broken_is_refused(references: Path, capsys):
    path = references / MONITOR.file_name
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, 'format': 0}))
    err = refusal(capsys, '--references', str(references), '--cores', 'monitor')
    assert f'{path} has reference format 0' in err and 'vla replay-test --update' in err
    path.write_text('{"format": 1, "core": "monitor"')
    err = refusal(capsys, '--references', str(references), '--cores', 'monitor')
    assert f'{path} is not a reference file' in err and 'restore it from git' in err


def test_a_missing_input_bag_is_refused(references: Path, capsys):
    shutil.rmtree(references / 'inputs' / 'cut_in')
    err = refusal(capsys, '--references', str(references), '--cores', 'monitor')
    assert f'no input bag at {references / "inputs" / "cut_in"}' in err
    assert 'vla replay-test --record-inputs' in err


def test_references_of_other_inputs_are_refused(references: Path, capsys):
    path = references / 'sync.json'
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, 'inputs': {**data['inputs'], 'nominal': '0' * 64}}))
    err = refusal(capsys, '--references', str(references), '--cores', 'sync')
    assert f'{path} was made from other input bags (nominal differ)' in err


def test_inference_references_of_another_model_are_refused(references: Path, capsys):
    path = references / 'inference.json'
    data = json.loads(path.read_text())
    made = data['model']
    data['model'] = {**made, 'weights_sha256': 'f' * 64}
    path.write_text(json.dumps(data))
    err = refusal(capsys, '--references', str(references))
    assert f'{path} was made with model {made["id"]}' in err
    assert 'regenerate the inference references with `vla replay-test --update`' in err
    assert f'--sha256 {"f" * 64}' in err and f'--onnx-sha256 {made["onnx_sha256"]}' in err
