"""scripts/setup.sh refuses a wrong interpreter before touching anything, and says why."""

import os
import subprocess
from pathlib import Path

from repo_paths import REPO_ROOT

SETUP = REPO_ROOT / 'scripts' / 'setup.sh'


def run_setup(tmp_path: Path, python: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHON=python, VLA_VENV=str(tmp_path / 'venv'))
    return subprocess.run(
        ['bash', str(SETUP)], env=env, capture_output=True, text=True, timeout=60
    )


def test_other_python_version_is_refused_by_name(tmp_path):
    python312 = tmp_path / 'python3.12'
    python312.write_text('#!/bin/sh\necho 3.12\n')
    python312.chmod(0o755)
    result = run_setup(tmp_path, str(python312))
    assert result.returncode == 1
    assert f"'{python312}' is Python 3.12" in result.stderr
    assert 'CPython 3.11 is needed (the ROS 2 Kilted wheels on PyPI are built for cp311 only)' in (
        result.stderr
    )
    assert not (tmp_path / 'venv').exists()


def test_missing_python_is_refused_with_the_fix(tmp_path):
    result = run_setup(tmp_path, 'python3.11-not-installed')
    assert result.returncode == 1
    assert "'python3.11-not-installed' was not found" in result.stderr
    assert 'set PYTHON=/path/to/python3.11' in result.stderr
    assert not (tmp_path / 'venv').exists()


def test_without_ros_extras_setup_goes_on_and_says_what_is_missing(tmp_path):
    missing = tmp_path / 'no-ros-extras'
    script = f'source {SETUP}; EXTRAS={missing}; ros_extras; echo "went on"'
    result = subprocess.run(['bash', '-c', script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines == [
        f'[setup] ros-extras not found at {missing} (set VLA_ROS_EXTRAS): launch, launch_ros, '
        'ros2cli, message_filters and tf_transformations not installed; the tests of ros2 '
        'launch and ros2cli skip',
        'went on',
    ]


def test_without_autoware_msgs_setup_goes_on_and_says_what_is_missing(tmp_path):
    missing = tmp_path / 'no-autoware-msgs'
    script = f'source {SETUP}; AUTOWARE_MSGS={missing}; autoware_msgs; echo "went on"'
    result = subprocess.run(['bash', '-c', script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f'[setup] autoware-msgs not found at {missing} (set VLA_AUTOWARE_MSGS): '
        'autoware_common_msgs autoware_planning_msgs autoware_control_msgs '
        'autoware_perception_msgs autoware_vehicle_msgs autoware_system_msgs not built; the '
        'Autoware adapters stay off and their tests skip',
        'went on',
    ]
