"""A plain colcon workspace with this repository under src/ finds and builds both packages."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from repo_paths import REPO_ROOT, tool

COLCON = tool('colcon')


def make_workspace(root: Path) -> Path:
    """Make a workspace whose src/ holds the repository, as a user who cloned it there has."""
    (root / 'src').mkdir()
    (root / 'src' / 'vla_ros').symlink_to(REPO_ROOT, target_is_directory=True)
    return root


@pytest.fixture(scope='module')
def workspace(tmp_path_factory) -> Path:
    return make_workspace(tmp_path_factory.mktemp('ws'))


def colcon(workspace: Path, *args: str) -> str:
    underlay = os.environ.get('AMENT_PREFIX_PATH') or sys.prefix  # a sourced ROS, or the .venv
    env = dict(os.environ, AMENT_PREFIX_PATH=underlay, CMAKE_PREFIX_PATH=underlay)
    result = subprocess.run(
        [COLCON, *args], cwd=workspace, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, (
        f'colcon {" ".join(args)} failed:\n{result.stdout}{result.stderr}'
    )
    return result.stdout


def test_colcon_list_finds_both_packages_without_flags(workspace):
    listed = dict(line.split('\t')[0::2] for line in colcon(workspace, 'list').splitlines())
    assert listed == {'vla_msgs': '(ros.ament_cmake)', 'vla_ros': '(ros.ament_python)'}


def test_colcon_orders_the_interfaces_first(workspace):
    assert colcon(workspace, 'list', '--names-only', '--topological-order').split() == [
        'vla_msgs',
        'vla_ros',
    ]


@pytest.mark.parametrize('mode', [[], ['--symlink-install']], ids=['copy', 'symlink'])
def test_colcon_build_installs_vla_ros_for_ros2_run(tmp_path, mode: list[str]):
    """vla_ros builds on the venv's ROS underlay, with executables where `ros2 run` looks."""
    colcon(make_workspace(tmp_path), 'build', '--packages-select', 'vla_ros', *mode)
    install = tmp_path / 'install' / 'vla_ros'
    assert (install / 'share' / 'vla_ros' / 'package.xml').exists()
    assert (install / 'share' / 'ament_index' / 'resource_index' / 'packages' / 'vla_ros').exists()
    result = subprocess.run(
        ['bash', '-c', 'source install/setup.bash && install/vla_ros/lib/vla_ros/vla --version'],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == 'vla 0.1.0'
