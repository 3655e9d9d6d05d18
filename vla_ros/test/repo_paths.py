"""Paths into this repository and to the tools the tests run, for .venv and full ROS installs."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

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
