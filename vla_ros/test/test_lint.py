"""Lint, as ament_flake8 and ament_pep257 do for ROS packages (ruff), and shellcheck."""

import subprocess

from repo_paths import REPO_ROOT, tool

RUFF = tool('ruff')


def test_ruff_check():
    result = subprocess.run([RUFF, 'check', '.'], cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format():
    result = subprocess.run(
        [RUFF, 'format', '--check', '.'], cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_shellcheck():
    scripts = [*sorted((REPO_ROOT / 'scripts').glob('*.sh')), REPO_ROOT / '.ci' / 'run']
    result = subprocess.run(
        [tool('shellcheck'), *map(str, scripts)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
