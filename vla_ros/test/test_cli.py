"""The `vla` command-line tool."""

import json
import re
import subprocess
import sys

from repo_paths import run_vla
from vla_tools import cli, doctor

VLA = [sys.executable, '-m', 'vla_tools.cli']  # the console script itself: test_workspace.py


def test_doctor_passes_in_the_set_up_environment():
    result = subprocess.run([*VLA, 'doctor'], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[1] for line in lines if line.startswith('ok')] == [
        'python',
        'rclpy',
        'vla_msgs',
        'bag',
        'torch',
        'ros',
    ]
    assert 'RMW rmw_fastrtps_cpp' in result.stdout
    assert '15 vla_msgs types registered' in result.stdout
    assert lines[-1] == 'environment ready'


def test_doctor_reports_a_failing_check_and_exits_non_zero(monkeypatch, capsys):
    def broken() -> str:
        raise ImportError('No module named vla_msgs')

    monkeypatch.setattr(doctor, 'CHECKS', [('python', doctor._check_python), ('vla_msgs', broken)])
    assert cli.main(['doctor']) == 1
    output = capsys.readouterr().out
    assert re.search(r'^FAIL vla_msgs +ImportError: No module named vla_msgs$', output, re.M)
    assert '1 check(s) failed: vla_msgs' in output


def test_unknown_command_is_a_usage_error():
    result = subprocess.run([*VLA, 'fly'], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "invalid choice: 'fly'" in result.stderr


def test_bench_safety_prints_every_case_and_writes_json(tmp_path):
    result = run_vla('bench', 'safety', '--cycles', '30', '--json', str(tmp_path / 'safety.json'))
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / 'safety.json').read_text(encoding='utf-8'))
    cases = {r['case']: r for r in report['results']}
    assert set(cases) == {'far', 'adjacent', 'plans_lost'}
    assert cases['far']['states'] == ['NOMINAL/MODEL']
    assert cases['plans_lost']['states'] == ['MINIMAL_RISK/COMFORTABLE_STOP']
    assert all(0 < r['step_p50_ms'] <= r['step_p99_ms'] for r in cases.values())
    assert 'goal p99 <= 1 ms' in result.stdout


def test_training_commands_make_openmp_threads_sleep_at_barriers(monkeypatch):
    monkeypatch.delenv('OMP_WAIT_POLICY', raising=False)
    cli.quiet_openmp_waits(['sim', 'eval', '--driver', 'expert'])
    assert 'OMP_WAIT_POLICY' not in cli.os.environ
    cli.quiet_openmp_waits(['student', 'train', 'run.yaml'])
    assert cli.os.environ['OMP_WAIT_POLICY'] == 'PASSIVE'
    monkeypatch.setenv('OMP_WAIT_POLICY', 'ACTIVE')  # the caller's choice is kept
    cli.quiet_openmp_waits(['teacher', 'train', 'run.yaml'])
    assert cli.os.environ['OMP_WAIT_POLICY'] == 'ACTIVE'
    # OpenMP reads the policy when torch loads it: the command line must not import torch first.
    loaded = subprocess.run(
        [sys.executable, '-c', 'import sys, vla_tools.cli; print("torch" in sys.modules)'],
        capture_output=True,
        text=True,
        check=True,
    )
    assert loaded.stdout.strip() == 'False'
