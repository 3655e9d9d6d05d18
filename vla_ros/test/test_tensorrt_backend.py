"""The TensorRT backend. Where TensorRT or a GPU is missing, its tests skip and say why."""

import re

import numpy as np
import pytest
import torch

from vla_model.backends import OnnxRuntimeBackend, select_backend
from vla_model.config import student
from vla_model.export import example_inputs, export_onnx
from vla_model.network import VlaNet
from vla_model.tensorrt_backend import (
    build_engine,
    engine_cache_name,
    tensorrt_unavailable_reason,
)

CONFIG = student()
UNAVAILABLE = tensorrt_unavailable_reason()
needs_tensorrt = pytest.mark.skipif(UNAVAILABLE is not None, reason=f'TensorRT: {UNAVAILABLE}')


@pytest.fixture(scope='module')
def onnx_path(tmp_path_factory):
    torch.manual_seed(3)
    return export_onnx(VlaNet(CONFIG).eval(), tmp_path_factory.mktemp('trt') / 'student.onnx')


def test_engines_are_cached_per_onnx_tensorrt_version_gpu_and_precision():
    name = engine_cache_name('ab' * 32, '10.9.0', 'NVIDIA H100 80GB HBM3', 'fp16')
    assert name == f'{"ab" * 8}-trt10.9.0-nvidia-h100-80gb-hbm3-fp16.engine'
    assert name != engine_cache_name('ab' * 32, '10.10.0', 'NVIDIA H100 80GB HBM3', 'fp16')


@pytest.mark.skipif(UNAVAILABLE is None, reason='TensorRT is available here')
def test_asking_for_tensorrt_where_it_cannot_run_says_why(onnx_path):
    model = VlaNet(CONFIG)
    with pytest.raises(
        RuntimeError, match=re.escape(f'backend tensorrt cannot be used: {UNAVAILABLE}')
    ):
        select_backend('tensorrt', model, onnx_path)
    assert select_backend('auto', model, onnx_path).name == 'onnxruntime'


@needs_tensorrt
@pytest.mark.parametrize(('precision', 'tolerance'), [('fp32', 1e-3), ('fp16', 5e-2)])
def test_engine_matches_onnxruntime(onnx_path, tmp_path, precision, tolerance):
    engine = build_engine(onnx_path, tmp_path, precision)
    assert build_engine(onnx_path, tmp_path, precision) == engine  # the cache is reused
    backend = select_backend('tensorrt', VlaNet(CONFIG), onnx_path, tmp_path, precision)
    inputs = example_inputs(CONFIG, seed=5)
    expected = OnnxRuntimeBackend(onnx_path).run(inputs)
    actual = backend.run(inputs)
    for name, value in expected.items():
        assert np.abs(actual[name] - value).max() <= tolerance, name
