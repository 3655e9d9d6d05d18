"""Paths into this repository and to the tools the tests run, for .venv and full ROS installs."""

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
MSG_FILES = sorted((REPO_ROOT / 'vla_msgs' / 'msg').glob('*.msg'))
MESSAGE_TYPES = [f'vla_msgs/{path.stem}' for path in MSG_FILES]


def tool(name: str) -> str:
    """Return the path of a command: beside this interpreter (the .venv) first, then on PATH."""
    found = shutil.which(
        name, path=f'{Path(sys.executable).parent}{os.pathsep}{os.environ["PATH"]}'
    )
    assert found, f'{name} not found beside {sys.executable} nor on PATH'
    return found


def run_vla(*args: str, timeout: float = 300.0) -> subprocess.CompletedProcess:
    """Run the installed `vla` command line; return its result with text output."""
    return subprocess.run([tool('vla'), *args], capture_output=True, text=True, timeout=timeout)


ROS_EXTRAS = Path(os.environ.get('VLA_ROS_EXTRAS', REPO_ROOT.parent / 'shared' / 'ros-extras'))
ROS_EXTRAS_MODULES = (
    'launch_ros',
    'ros2cli',
    'message_filters',
    'tf_transformations',
    'composition_interfaces',
)


def require_ros_extras() -> None:
    """Skip the calling test module where set-up had no ros-extras; fail where it should have.

    launch, launch_ros, ros2cli, message_filters and tf_transformations are not on PyPI:
    scripts/setup.sh installs them from ros-extras when the folder exists. A folder that exists
    with the packages missing is a broken set-up, not a reason to skip.
    """
    missing = [name for name in ROS_EXTRAS_MODULES if importlib.util.find_spec(name) is None]
    if not missing:
        return
    if ROS_EXTRAS.is_dir():
        pytest.fail(
            f'{ROS_EXTRAS} exists but {", ".join(missing)} are not installed: run make setup',
            pytrace=False,
        )
    pytest.skip(
        f'no ros-extras at {ROS_EXTRAS} (set VLA_ROS_EXTRAS and run make setup): '
        f'{", ".join(missing)} not installed',
        allow_module_level=True,
    )
