"""Machine-readable results of the `vla` commands (benchmarks now; evaluations later)."""

import json
from pathlib import Path


def write_json(path: Path, payload: dict) -> None:
    """Write `payload` as indented JSON to `path` and say so on stdout."""
    path.write_text(json.dumps(payload, indent=2), encoding='utf-8')
    print(f'wrote {path}')
