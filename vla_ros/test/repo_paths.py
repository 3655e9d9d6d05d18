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


def require_installed(modules: tuple[str, ...], folder: Path, variable: str) -> None:
    """Skip the calling test module where set-up had no `folder`; fail where it should have.

    scripts/setup.sh installs `modules` from `folder` (or the one `variable` names) when the
    folder exists. A folder that exists with the modules missing is a broken set-up, not a
    reason to skip.
    """
    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if not missing:
        return
    if folder.is_dir():
        pytest.fail(
            f'{folder} exists but {", ".join(missing)} are not installed: run make setup',
            pytrace=False,
        )
    pytest.skip(
        f'no {folder.name} at {folder} (set {variable} and run make setup): '
        f'{", ".join(missing)} not installed',
        allow_module_level=True,
    )


def require_ros_extras() -> None:
    """Skip without ros-extras: launch, launch_ros, ros2cli... are not on PyPI."""
    require_installed(ROS_EXTRAS_MODULES, ROS_EXTRAS, 'VLA_ROS_EXTRAS')


AUTOWARE_MSGS = Path(
    os.environ.get('VLA_AUTOWARE_MSGS', REPO_ROOT.parent / 'shared' / 'autoware-msgs')
)
AUTOWARE_PACKAGES = (
    'autoware_planning_msgs',
    'autoware_control_msgs',
    'autoware_perception_msgs',
    'autoware_vehicle_msgs',
    'autoware_system_msgs',
)


def require_autoware_msgs() -> None:
    """Skip without autoware-msgs: Autoware's interface packages are not on PyPI."""
    require_installed(AUTOWARE_PACKAGES, AUTOWARE_MSGS, 'VLA_AUTOWARE_MSGS')
