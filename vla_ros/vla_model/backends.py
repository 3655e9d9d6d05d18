"""Inference backends behind one interface: PyTorch, ONNX Runtime, TensorRT.

`auto` picks TensorRT where it can run (engine built from the ONNX export), else ONNX Runtime
when an ONNX export is given (1.5-1.8x faster than PyTorch eager on the development CPU), else
PyTorch. Asking by name for a backend that cannot run here is an error that says why.
"""

from pathlib import Path
from typing import Protocol

import numpy as np
import onnxruntime
import torch

from vla_model.network import INPUT_NAMES, OUTPUT_NAMES, VlaNet
from vla_model.tensorrt_backend import (
    TensorRtBackend,
    build_engine,
    tensorrt_unavailable_reason,
)

BACKENDS = ('auto', 'torch', 'onnxruntime', 'tensorrt')


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

    def __init__(
        self, onnx_path: Path, providers: list[str] | None = None, intra_op_threads: int = 0
    ) -> None:
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        # 0: ONNX Runtime's default, one thread per physical core.
        options.intra_op_num_threads = intra_op_threads
        # Idle intra-op threads sleep instead of spinning: spinning keeps every core busy for a
        # while after each run (on 2 cores: 94 ms of CPU per run instead of 50, at the same
        # latency) and starves the sync node and DDS that share those cores.
        options.add_session_config_entry('session.intra_op.allow_spinning', '0')
        self.session = onnxruntime.InferenceSession(
            str(onnx_path), options, providers=providers or ['CPUExecutionProvider']
        )

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one batch."""
        return dict(zip(OUTPUT_NAMES, self.session.run(list(OUTPUT_NAMES), inputs), strict=True))


def select_backend(
    requested: str,
    model: VlaNet,
    onnx_path: Path | None,
    engine_cache_dir: Path | None = None,
    precision: str = 'fp16',
    intra_op_threads: int = 0,
) -> Backend:
    """Build the requested backend; 'auto' takes the fastest one that can run here."""
    if requested not in BACKENDS:
        raise ValueError(f'backend {requested!r} is not one of {", ".join(BACKENDS)}')
    trt_reason = tensorrt_unavailable_reason()
    if requested == 'tensorrt' and trt_reason is not None:
        raise RuntimeError(f'backend tensorrt cannot be used: {trt_reason}')
    if requested in ('onnxruntime', 'tensorrt') and onnx_path is None:
        raise ValueError(f'backend {requested} needs an ONNX export (onnx_path)')
    if requested == 'tensorrt' or (requested == 'auto' and trt_reason is None and onnx_path):
        cache_dir = engine_cache_dir or onnx_path.parent
        return TensorRtBackend(build_engine(onnx_path, cache_dir, precision))
    if requested == 'onnxruntime' or (requested == 'auto' and onnx_path is not None):
        return OnnxRuntimeBackend(onnx_path, intra_op_threads=intra_op_threads)
    return TorchBackend(model)
