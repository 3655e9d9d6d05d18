"""TensorRT: an engine built from the same ONNX export, cached, and run on torch CUDA buffers.

Engines are cached by the ONNX file's SHA-256, the TensorRT version, the GPU name and the
precision, because an engine is only valid for the exact TensorRT and GPU that built it (a
TensorRT upgrade silently breaking cached engines is a known trap). A timing cache makes rebuilds
fast. INT8 needs a calibrator fed with recorded frames. Device buffers are torch CUDA tensors
(no pycuda); inference is `execute_async_v3` on torch's current stream.

`tensorrt` is imported inside the functions, so this module imports on machines without it;
`tensorrt_unavailable_reason()` says why it cannot run there.
"""

import importlib.util
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch

from vla_model.artifacts import sha256_file

PRECISIONS = ('fp32', 'fp16', 'int8')


def tensorrt_unavailable_reason() -> str | None:
    """Return why TensorRT cannot run here, or None when it can."""
    if importlib.util.find_spec('tensorrt') is None:
        return 'the tensorrt Python package is not installed (it needs an NVIDIA GPU and CUDA)'
    if not torch.cuda.is_available():
        return 'no CUDA device is available to torch'
    return None


def engine_cache_name(onnx_sha256: str, trt_version: str, gpu_name: str, precision: str) -> str:
    """Return the engine file name for one ONNX export, TensorRT version, GPU and precision."""
    gpu = re.sub(r'[^A-Za-z0-9]+', '-', gpu_name).strip('-').lower()
    return f'{onnx_sha256[:16]}-trt{trt_version}-{gpu}-{precision}.engine'


def _calibrator(inputs: Iterable[dict[str, np.ndarray]], cache_path: Path):
    """Return an entropy calibrator that feeds recorded model inputs to TensorRT's INT8 pass."""
    import tensorrt as trt

    class FrameCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self.batches = iter(inputs)
            self.device: dict[str, torch.Tensor] = {}

        def get_batch_size(self) -> int:
            return 1

        def get_batch(self, names: list[str]) -> list[int] | None:
            batch = next(self.batches, None)
            if batch is None:
                return None
            self.device = {name: torch.from_numpy(batch[name]).cuda() for name in names}
            return [self.device[name].data_ptr() for name in names]

        def read_calibration_cache(self) -> bytes | None:
            return cache_path.read_bytes() if cache_path.is_file() else None

        def write_calibration_cache(self, cache: bytes) -> None:
            cache_path.write_bytes(cache)

    return FrameCalibrator()


def build_engine(
    onnx_path: Path,
    cache_dir: Path,
    precision: str = 'fp16',
    calibration_inputs: Iterable[dict[str, np.ndarray]] | None = None,
    workspace_bytes: int = 1 << 30,
) -> Path:
    """Build (or reuse from `cache_dir`) the engine of an ONNX export; return its path."""
    reason = tensorrt_unavailable_reason()
    if reason is not None:
        raise RuntimeError(f'cannot build a TensorRT engine: {reason}')
    if precision not in PRECISIONS:
        raise ValueError(f'precision {precision!r} is not one of {", ".join(PRECISIONS)}')
    if precision == 'int8' and calibration_inputs is None:
        raise ValueError('int8 needs calibration_inputs: recorded frames as model inputs')
    import tensorrt as trt

    onnx_sha256 = sha256_file(onnx_path)
    cache_dir.mkdir(parents=True, exist_ok=True)
    engine_path = cache_dir / engine_cache_name(
        onnx_sha256, trt.__version__, torch.cuda.get_device_name(), precision
    )
    if engine_path.is_file():
        return engine_path
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_path.read_bytes()):
        errors = '; '.join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f'TensorRT cannot parse {onnx_path}: {errors}')
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_bytes)
    timing_path = cache_dir / f'timing-trt{trt.__version__}.cache'
    timing = config.create_timing_cache(timing_path.read_bytes() if timing_path.is_file() else b'')
    config.set_timing_cache(timing, ignore_mismatch=False)
    if precision in ('fp16', 'int8'):
        config.set_flag(trt.BuilderFlag.FP16)
    if precision == 'int8':
        config.set_flag(trt.BuilderFlag.INT8)
        config.int8_calibrator = _calibrator(
            calibration_inputs, cache_dir / f'{onnx_sha256[:16]}.calibration'
        )
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f'TensorRT could not build an engine from {onnx_path} ({precision})')
    engine_path.write_bytes(bytes(serialized))
    timing_path.write_bytes(bytes(config.get_timing_cache().serialize()))
    return engine_path


class TensorRtBackend:
    """Run a serialized engine; inputs are copied to CUDA, outputs come back as numpy."""

    name = 'tensorrt'

    def __init__(self, engine_path: Path) -> None:
        import tensorrt as trt

        self.runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = self.runtime.deserialize_cuda_engine(engine_path.read_bytes())
        if self.engine is None:
            raise RuntimeError(
                f'TensorRT cannot load {engine_path} (built by another version or '
                'GPU? delete it to rebuild)'
            )
        self.context = self.engine.create_execution_context()
        dtypes = {
            trt.DataType.FLOAT: torch.float32,
            trt.DataType.HALF: torch.float16,
            trt.DataType.INT32: torch.int32,
            trt.DataType.INT64: torch.int64,
            trt.DataType.UINT8: torch.uint8,
            trt.DataType.BOOL: torch.bool,
        }
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [
            n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT
        ]
        self.outputs = {
            n: torch.empty(
                tuple(self.engine.get_tensor_shape(n)),
                dtype=dtypes[self.engine.get_tensor_dtype(n)],
                device='cuda',
            )
            for n in names
            if n not in self.inputs
        }
        for name, tensor in self.outputs.items():
            self.context.set_tensor_address(name, tensor.data_ptr())

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one batch on torch's current CUDA stream."""
        device = {
            name: torch.from_numpy(np.ascontiguousarray(inputs[name])).cuda()
            for name in self.inputs
        }
        for name, tensor in device.items():
            self.context.set_tensor_address(name, tensor.data_ptr())
        stream = torch.cuda.current_stream()
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise RuntimeError('TensorRT execution failed')
        stream.synchronize()
        return {name: tensor.float().cpu().numpy() for name, tensor in self.outputs.items()}
