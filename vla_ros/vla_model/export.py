"""Export the network to ONNX: static shapes, opset 18, checked and simplified.

The same file feeds ONNX Runtime and TensorRT's engine builder, so the export is checked for
numerical parity against PyTorch before it is used (tests: max abs error <= 1e-4 in fp32).
"""

from pathlib import Path

import numpy as np
import onnx
import onnxsim
import torch

from vla_model.config import ModelConfig
from vla_model.network import INPUT_NAMES, OUTPUT_NAMES, VlaNet

OPSET = 18  # torch.export-based exporter's own opset (it cannot down-convert Pad to 17)


def example_inputs(config: ModelConfig, batch: int = 1, seed: int = 0) -> dict[str, np.ndarray]:
    """Return inputs of the right shapes and types with varied values, keyed by input name."""
    rng = np.random.default_rng(seed)
    rows, cols = config.bev_size
    cells, samples = rows * cols, config.samples_per_cell
    feature_count = config.num_cameras * config.feature_size[0] * config.feature_size[1]
    weight = rng.random((cells, samples), dtype=np.float32)
    return {
        'images': rng.integers(
            0,
            256,
            (batch, config.num_cameras, config.image_height, config.image_width, 3),
            dtype=np.uint8,
        ),
        'lut_index': rng.integers(
            0, (feature_count + 1) * max(config.depth_bins, 1), (cells, samples), dtype=np.int64
        ),
        'lut_weight': weight / weight.sum(axis=1, keepdims=True),
        'previous_bev': rng.standard_normal(
            (batch, config.bev_channels, rows, cols), dtype=np.float32
        ),
        'ego_motion': np.array([[1.2, 0.1, 0.02]] * batch, dtype=np.float32),
        'ego_state': np.array(
            [[12.0, 0.01, -0.5, 3.0][: config.ego_state_dim]] * batch, np.float32
        ),
        'instruction': rng.standard_normal(
            (batch, config.instruction_input_dim), dtype=np.float32
        ),
        'map_prior': rng.random((batch, config.map_prior_channels, rows, cols), dtype=np.float32),
        'map_prior_present': np.ones((batch, 1), dtype=np.float32),
    }


def export_onnx(model: VlaNet, path: Path, batch: int = 1) -> Path:
    """Export `model` (eval mode) to `path`, check it, simplify it, and return the path."""
    model = model.eval()
    inputs = example_inputs(model.config, batch)
    args = tuple(torch.from_numpy(inputs[name]) for name in INPUT_NAMES)
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.inference_mode():
        torch.onnx.export(
            model,
            args,
            str(path),
            input_names=list(INPUT_NAMES),
            output_names=list(OUTPUT_NAMES),
            opset_version=OPSET,
            dynamo=True,
            external_data=False,  # one file: its pinned SHA-256 then covers the weights too
            verbose=False,
        )
    exported = onnx.load(str(path))
    onnx.checker.check_model(exported)
    simplified, ok = onnxsim.simplify(exported)
    if not ok:
        raise RuntimeError(f'onnxsim could not validate the simplified model of {path}')
    onnx.checker.check_model(simplified)
    onnx.save(simplified, str(path))
    return path
