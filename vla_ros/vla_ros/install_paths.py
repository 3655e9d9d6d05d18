"""Find files that ROS packages install in `<prefix>/share/<package>`, with or without sourcing.

In the self-contained .venv nothing is sourced, so AMENT_PREFIX_PATH may be unset; the venv's own
prefix is then where vla_msgs and vla_ros put their shared files.
"""

import os
import sys
from pathlib import Path


def install_prefixes() -> list[Path]:
    """Return the install prefixes to search: the ament index path first, then this Python's."""
    prefixes = [Path(p) for p in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep) if p]
    prefixes.append(Path(sys.prefix))
    return prefixes


def find_share_path(package: str, relative: str, what: str) -> Path:
    """Return `<prefix>/share/<package>/<relative>` from the first prefix that has it.

    `what` names the thing in the error, which lists every place searched.
    """
    searched = []
    for prefix in install_prefixes():
        path = prefix / 'share' / package / relative
        if path.exists():
            return path
        searched.append(str(path))
    raise FileNotFoundError(
        f'no {what} found in: {", ".join(searched)}. Build and install {package} (`make setup`, '
        'or `colcon build` and source install/setup.bash).'
    )


def vla_ros_file(relative: str) -> Path:
    """Return a file vla_ros ships (e.g. `config/rig_surround.yaml`).

    A colcon install has it in `share/vla_ros`; an editable install (the .venv) installs no data
    files, so there it is read from the source tree beside the Python packages.
    """
    source = Path(__file__).resolve().parents[1] / relative
    try:
        return find_share_path('vla_ros', relative, relative)
    except FileNotFoundError:
        if source.exists():
            return source
        raise
