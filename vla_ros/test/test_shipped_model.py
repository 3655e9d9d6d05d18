"""The shipped default model: its files are the pinned ones, small, and the ONNX export is it."""

import numpy as np
import onnxruntime
import torch

from vla_model.artifacts import load_weights, verify
from vla_model.export import example_inputs
from vla_model.network import INPUT_NAMES
from vla_model.shipped import shipped_model

MAX_BYTES = 20 * 1024 * 1024


def test_the_shipped_files_have_their_pinned_hashes_and_fit_the_budget():
    model = shipped_model()
    assert verify(model.weights_path, model.weights_sha256) == model.weights_sha256
    assert verify(model.onnx_path, model.onnx_sha256) == model.onnx_sha256
    assert model.weights_path.stat().st_size <= MAX_BYTES
    assert model.onnx_path.stat().st_size <= MAX_BYTES
    assert load_weights(model.weights_path, model.weights_sha256).config.name == 'vla-student-v2'


def test_the_shipped_onnx_export_plans_as_the_weights_do():
    model = shipped_model()
    network = load_weights(model.weights_path, model.weights_sha256)
    session = onnxruntime.InferenceSession(
        str(model.onnx_path), providers=['CPUExecutionProvider']
    )
    inputs = example_inputs(network.config, seed=5)
    with torch.inference_mode():
        reference = network(*(torch.from_numpy(inputs[name]) for name in INPUT_NAMES))
    for expected, exported in zip(reference, session.run(None, inputs), strict=True):
        assert np.abs(expected.numpy() - exported).max() <= 1e-4
