"""The default model vla_ros ships: files under `models/`, pinned by `config/model.yaml`.

The pin file names the weights and ONNX export relative to the package and the SHA-256 each
must have, in the keys of `vla_inference_node`'s parameters, so the same values configure the
node, the simulator's pipeline driver and the demo. `models/MODEL_CARD.md` says what the model
is, how it was trained and how well it drives.
"""

from dataclasses import dataclass
from pathlib import Path

import yaml

from vla_ros.install_paths import vla_ros_file

PIN_FILE = 'config/model.yaml'
RECIPE = 'scripts/train_default_model.sh'


@dataclass(frozen=True)
class ShippedModel:
    """The shipped model's files and their pinned hashes."""

    weights_path: Path
    weights_sha256: str
    onnx_path: Path
    onnx_sha256: str


def shipped_model() -> ShippedModel:
    """Read the pin file; raise FileNotFoundError naming what is missing and how to make it."""
    pins = yaml.safe_load(vla_ros_file(PIN_FILE).read_text(encoding='utf-8'))
    try:
        return ShippedModel(
            weights_path=vla_ros_file(pins['weights_path']),
            weights_sha256=pins['weights_sha256'],
            onnx_path=vla_ros_file(pins['onnx_path']),
            onnx_sha256=pins['onnx_sha256'],
        )
    except FileNotFoundError as error:
        raise FileNotFoundError(
            f'the shipped model is missing ({error}); a checkout has it under vla_ros/models/, '
            f'and {RECIPE} trains it again'
        ) from None
