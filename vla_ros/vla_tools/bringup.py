"""Bring-ups: which nodes run together, with which parameter files and arguments.

One description (`config/bringup_<name>.yaml`) serves both ways of starting the stack: the launch
files (`ros2 launch vla_ros pipeline.launch.py`, for a full ROS 2 install) and `vla run` (for
machines without `launch`). Both apply, per node, the bring-up's parameter files and then the
values of the bring-up arguments below, so the two start the same nodes with the same parameters.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import yaml

from vla_model.shipped import shipped_model
from vla_ros.install_paths import vla_ros_file

PACKAGE = 'vla_ros'
LOG_LEVELS = ('debug', 'info', 'warn', 'error', 'fatal')
Value = TypeVar('Value')


@dataclass(frozen=True)
class BringUpArgument:
    """A launch argument / `vla run` option and the node parameter it sets (if any)."""

    name: str
    description: str
    parameter: str | None = None
    executables: tuple[str, ...] = ()  # the nodes that take `parameter`


MODEL_NODE = ('vla_inference_node',)
ARGUMENTS: tuple[BringUpArgument, ...] = (
    BringUpArgument('namespace', 'Namespace of every node (topics are relative to it).'),
    BringUpArgument(
        'rig_file',
        'Camera rig YAML; empty: the packaged config/rig_surround.yaml.',
        'rig_file',
        ('sensor_sync_node', 'sim_bridge_node'),
    ),
    BringUpArgument('weights_path', 'Model weights (safetensors).', 'weights_path', MODEL_NODE),
    BringUpArgument(
        'weights_sha256', 'SHA-256 the weights must have.', 'weights_sha256', MODEL_NODE
    ),
    BringUpArgument(
        'onnx_path', 'ONNX export of the weights; empty: no ONNX.', 'onnx_path', MODEL_NODE
    ),
    BringUpArgument('onnx_sha256', 'SHA-256 the ONNX file must have.', 'onnx_sha256', MODEL_NODE),
    BringUpArgument('backend', 'auto, torch, onnxruntime or tensorrt.', 'backend', MODEL_NODE),
    BringUpArgument('log_level', f'Log level of every node: {", ".join(LOG_LEVELS)}.'),
    BringUpArgument(
        'use_sim_time',
        'true: nodes run on /clock (simulator, bag replay); the sim bridge, the clock, does not.',
        'use_sim_time',
    ),
    BringUpArgument(
        'autoware',
        'true: the Autoware adapters (PredictedObjects in; trajectory in map, Control, hazard '
        "status and lights out, on Autoware's topics); needs the Autoware message packages.",
        'autoware',
        ('safety_monitor_node', 'trajectory_output_node'),
    ),
)
ARGUMENT_NAMES = tuple(argument.name for argument in ARGUMENTS)
BOOLEAN_ARGUMENTS = ('use_sim_time', 'autoware')


@dataclass(frozen=True)
class NodeLaunch:
    """One node of a bring-up: its executable (also its name) and parameter files."""

    executable: str
    parameter_files: tuple[str, ...]  # relative to the vla_ros package
    clock: bool = False  # the node publishes /clock and runs on wall time itself

    @property
    def name(self) -> str:
        """Return the node's name: the executable's, as each node names itself."""
        return self.executable

    def parameter_paths(self) -> list[Path]:
        """Return the parameter files as paths; FileNotFoundError names a missing one."""
        return [vla_ros_file(relative) for relative in self.parameter_files]


@dataclass(frozen=True)
class BringUp:
    """The nodes one bring-up starts and whether they run on /clock by default."""

    name: str
    description: str
    use_sim_time: bool
    nodes: tuple[NodeLaunch, ...]
    autoware: bool = False  # the default of the `autoware` argument


def bringup_file(name_or_path: str) -> Path:
    """Return the bring-up file: a path, or the name of a packaged `config/bringup_<name>.yaml`."""
    path = Path(name_or_path)
    if path.suffix in ('.yaml', '.yml'):
        if not path.is_file():
            raise FileNotFoundError(f'bring-up file {path} does not exist')
        return path
    try:
        return vla_ros_file(f'config/bringup_{name_or_path}.yaml')
    except FileNotFoundError:
        raise FileNotFoundError(
            f'no bring-up named {name_or_path!r}: the packaged ones are '
            f'{", ".join(packaged_bringups())}, or give a YAML file'
        ) from None


def packaged_bringups() -> list[str]:
    """Return the names of the bring-ups vla_ros ships."""
    config = vla_ros_file('config/bringup_pipeline.yaml').parent
    return sorted(path.stem.removeprefix('bringup_') for path in config.glob('bringup_*.yaml'))


def load_bringup(name_or_path: str) -> BringUp:
    """Read a bring-up; ValueError says which key of which file is wrong."""
    path = bringup_file(name_or_path)
    content = yaml.safe_load(path.read_text(encoding='utf-8'))
    try:
        nodes = tuple(
            NodeLaunch(
                str(entry['executable']),
                tuple(str(p) for p in entry.get('parameters', ())),
                bool(entry.get('clock', False)),
            )
            for entry in content['nodes']
        )
        if 'include' in content:
            nodes += load_bringup(str(content['include'])).nodes
        bringup = BringUp(
            path.stem.removeprefix('bringup_'),
            str(content.get('description', '')),
            bool(content['use_sim_time']),
            nodes,
            bool(content.get('autoware', False)),
        )
    except (KeyError, TypeError) as error:
        raise ValueError(f'{path}: bad bring-up ({error!r}); see docs/BRINGUP.md') from None
    names = [node.name for node in bringup.nodes]
    if len(set(names)) != len(names):
        raise ValueError(f'{path}: a node is listed twice: {names}')
    return bringup


def argument_defaults(bringup: BringUp) -> dict[str, str]:
    """Return every argument's default for `bringup`, as text (what a launch argument holds).

    The model arguments default to the shipped model (`config/model.yaml`); a missing model
    file raises FileNotFoundError naming the command that trains it again.
    """
    model = shipped_model()
    return {
        'namespace': '',
        'rig_file': '',
        'weights_path': str(model.weights_path),
        'weights_sha256': model.weights_sha256,
        'onnx_path': str(model.onnx_path),
        'onnx_sha256': model.onnx_sha256,
        'backend': 'auto',
        'log_level': 'info',
        'use_sim_time': 'true' if bringup.use_sim_time else 'false',
        'autoware': 'true' if bringup.autoware else 'false',
    }


def node_overrides(node: NodeLaunch, value_of: Callable[[str], Value]) -> dict[str, Value]:
    """Return the parameters `node` takes from the bring-up arguments, valued by `value_of`.

    `value_of(argument_name)` is the argument's value: text for `vla run`, a substitution for
    a launch file. The clock node never gets use_sim_time (it refuses it).
    """
    overrides = {}
    for argument in ARGUMENTS:
        if argument.parameter is None:
            continue
        if argument.name == 'use_sim_time':
            takes = not node.clock
        else:
            takes = node.executable in argument.executables
        if takes:
            overrides[argument.parameter] = value_of(argument.name)
    return overrides


def flatten(parameters: dict, prefix: str = '') -> dict[str, object]:
    """Return nested YAML parameters as ROS names them: `limits: {plan_age_s: 0.5}` -> dotted."""
    flat: dict[str, object] = {}
    for key, value in parameters.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f'{prefix}{key}.'))
        else:
            flat[f'{prefix}{key}'] = value
    return flat


def file_parameters(path: Path, node_name: str) -> dict[str, object]:
    """Return the parameters a vla_ros parameter file sets for `node_name` (`/**/<node>` key)."""
    content = yaml.safe_load(path.read_text(encoding='utf-8'))
    key = f'/**/{node_name}'
    if list(content) != [key] or 'ros__parameters' not in content[key]:
        raise ValueError(f'{path}: expected one key {key!r} with ros__parameters')
    return flatten(content[key]['ros__parameters'])


def node_parameters(node: NodeLaunch) -> dict[str, object]:
    """Return what the node's parameter files set, the later files winning, as rcl applies them."""
    values: dict[str, object] = {}
    for path in node.parameter_paths():
        values.update(file_parameters(path, node.name))
    return values
