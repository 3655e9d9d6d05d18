"""The `vla` command-line tool."""

import re
import subprocess
import sys

from vla_ros import cli, doctor

VLA = [sys.executable, '-m', 'vla_ros.cli']  # the console script itself: test_workspace.py


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
