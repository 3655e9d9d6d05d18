"""Lint, as ament_flake8 and ament_pep257 do for ROS packages (ruff), shellcheck, and the layers.

The package layers (docs/ARCHITECTURE.md, "Layers") are import-linter contracts in
vla_ros/setup.cfg; a wrong-way import fails here with a line naming both modules.
"""

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

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


PACKAGES = sorted(path.parent.name for path in (REPO_ROOT / 'vla_ros').glob('vla_*/__init__.py'))
LINT_IMPORTS = shutil.which(
    'lint-imports', path=f'{Path(sys.executable).parent}{os.pathsep}{os.environ["PATH"]}'
)
needs_import_linter = pytest.mark.skipif(
    LINT_IMPORTS is None or importlib.util.find_spec('importlinter') is None,
    reason='import-linter is not installed (scripts/requirements-dev.txt; make setup installs it)',
)


def lint_imports(package_root: Path) -> subprocess.CompletedProcess:
    """Run lint-imports with the project's contracts (setup.cfg) over the packages in a folder."""
    return subprocess.run(
        [LINT_IMPORTS, '--no-cache', '--no-logo', str(REPO_ROOT / 'vla_ros' / 'setup.cfg')],
        cwd=package_root,
        env={**os.environ, 'PYTHONPATH': str(package_root), 'COLUMNS': '200'},
        capture_output=True,
        text=True,
    )


@needs_import_linter
def test_imports_follow_the_package_layers():
    result = lint_imports(REPO_ROOT / 'vla_ros')
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'BROKEN' not in result.stdout and ' 0 broken' in result.stdout, result.stdout


@needs_import_linter
def test_a_wrong_way_import_breaks_the_layers_naming_both_modules(tmp_path):
    """A ground-floor module importing a tool fails the check, which names both modules."""
    for package in PACKAGES:
        shutil.copytree(
            REPO_ROOT / 'vla_ros' / package,
            tmp_path / package,
            ignore=shutil.ignore_patterns('__pycache__'),
        )
    qos = tmp_path / 'vla_ros' / 'qos.py'
    qos.write_text(qos.read_text() + '\nfrom vla_tools.cli import main  # noqa: E402\n')
    result = lint_imports(tmp_path)
    print(result.stdout + result.stderr)
    assert result.returncode != 0
    assert 'BROKEN' in result.stdout
    assert 'vla_ros.qos -> vla_tools.cli' in result.stdout
