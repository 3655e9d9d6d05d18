"""Paths into this repository's source tree, for tests that read sources rather than installs."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
MSG_FILES = sorted((REPO_ROOT / 'vla_msgs' / 'msg').glob('*.msg'))
MESSAGE_TYPES = [f'vla_msgs/{path.stem}' for path in MSG_FILES]
