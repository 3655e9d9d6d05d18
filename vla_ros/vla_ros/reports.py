"""Results of the `vla` commands: machine-readable JSON, and the Markdown tables people read."""

import json
from collections.abc import Iterable, Sequence
from pathlib import Path


def write_json(path: Path, payload: dict) -> None:
    """Write `payload` as indented JSON to `path` and say so on stdout."""
    path.write_text(json.dumps(payload, indent=2), encoding='utf-8')
    print(f'wrote {path}')


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """Return a Markdown table (no trailing newline): a header row, its rule, one row each."""
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    lines += ['| ' + ' | '.join(str(cell) for cell in row) + ' |' for row in rows]
    return '\n'.join(lines)
