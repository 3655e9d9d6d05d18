"""The inference runtime core, on the real network with the PyTorch and ONNX Runtime backends."""

import hashlib
from dataclasses import replace

import numpy as np
import pytest
import torch

from test_vla_model import rig_cameras
from vla_model.backends import OnnxRuntimeBackend, TorchBackend, select_backend
from vla_model.bev_geometry import CameraGeometry
from vla_model.config import student
from vla_model.export import export_onnx
from vla_model.instruction_features import speed_slot
from vla_model.model_inputs import FrameInput, relative_motion
from vla_model.network import VlaNet
from vla_model.student_network import build_network, student_v2
from vla_planning import inference_core
from vla_planning.inference_core import (
    InferenceCore,
    InvalidModelOutputError,
    UnplannableFrameError,
    path_kinematics,
)
from vla_planning.plan_speeds import within_acceleration_limits

CONFIG = student()
MS = 1_000_000


def fake_encoder(text: str) -> np.ndarray:
    """Return a stable stand-in embedding (the real MiniLM encoder is tested in test_vla_model)."""
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], 'little')
    return np.random.default_rng(seed).standard_normal(384).astype(np.float32)


def frame(stamp_ms: int, epoch: int = 0, x: float = 0.0, valid=None) -> FrameInput:
    rng = np.random.default_rng(stamp_ms)
    images = rng.integers(
        0, 256, (CONFIG.num_cameras, CONFIG.image_height, CONFIG.image_width, 3), dtype=np.uint8
    )
    return FrameInput(
        stamp_ns=stamp_ms * MS,
        epoch=epoch,
        images=images,
        camera_valid=np.ones(CONFIG.num_cameras, bool) if valid is None else valid,
        cameras=tuple(rig_cameras()),
        pose=(x, 0.0, 0.0),
        ego_state=(10.0, 0.0, 0.0),
    )


class Recording:
    """A real backend that also keeps the inputs of its last call."""

    def __init__(self, backend) -> None:
        self.backend, self.name, self.inputs = backend, backend.name, None

    def run(self, inputs):
        """Remember the inputs, then run the real backend."""
        self.inputs = inputs
        return self.backend.run(inputs)


@pytest.fixture(scope='module')
def model() -> VlaNet:
    torch.manual_seed(1)
    return VlaNet(CONFIG).eval()


@pytest.fixture
def core(model):
    return InferenceCore(CONFIG, Recording(TorchBackend(model)), fake_encoder)


def test_relative_motion_is_expressed_in_the_previous_base_link():
    assert relative_motion((1.0, 2.0, np.pi / 2), (1.0, 5.0, np.pi / 2)) == pytest.approx(
        [3.0, 0.0, 0.0], abs=1e-6
    )  # heading north, moved 3 m north: 3 m forward
    assert relative_motion((0.0, 0.0, 3.1), (0.0, 0.0, -3.1))[2] == pytest.approx(
        2 * np.pi - 6.2
    )  # yaw change wraps through +-pi


def test_path_kinematics_of_constant_speed_and_a_turn():
    t = np.arange(1, 7) * 0.5
    straight = np.stack([10.0 * t, 0 * t, 0 * t], -1)
    speeds, accelerations, yaw_rates = path_kinematics(straight, 0.5)
    assert speeds == pytest.approx(np.full(6, 10.0))
    assert accelerations == pytest.approx(np.zeros(6)) and yaw_rates == pytest.approx(np.zeros(6))
    braking = np.stack([np.cumsum([5.0, 4.0, 3.0, 2.0, 1.0, 0.0]), 0 * t, 0 * t], -1)
    assert path_kinematics(braking, 0.5)[1][1:] == pytest.approx(np.full(5, -4.0))
    turning = np.stack([10.0 * t, 0 * t, 0.1 * t], -1)
    assert path_kinematics(turning, 0.5)[2] == pytest.approx(np.full(6, 0.1))


def test_plan_has_probabilities_rationale_and_times(core):
    plan = core.step(frame(0))
    assert plan.probabilities.sum() == pytest.approx(1.0)
    assert plan.confidence == pytest.approx(plan.probabilities.max())
    # The selected candidate, re-timed along its path within the plan's acceleration limits.
    expected = within_acceleration_limits(plan.candidates[plan.selected], 0.5, core.limits)
    assert np.array_equal(plan.trajectory, expected)
    assert plan.accelerations_mps2.max() <= core.limits.max_acceleration_mps2 + 0.05
    assert plan.accelerations_mps2.min() >= -core.limits.max_deceleration_mps2 - 0.05
    assert plan.rationale == CONFIG.rationales[plan.rationale_class]
    assert plan.times_s == pytest.approx([0.5, 1.0, 1.5, 2.0, 2.5, 3.0])
    assert plan.bev_probabilities.min() >= 0.0 and plan.bev_probabilities.max() <= 1.0
    assert plan.inference_ms > 0


def test_temporal_state_resets_on_a_new_epoch_or_a_gap(core):
    steps = [(0, 0), (100, 0), (200, 1), (300, 1), (2000, 1), (2100, 1)]
    resets = [
        core.step(frame(stamp, epoch, x=stamp / 100)).temporal_reset for stamp, epoch in steps
    ]
    assert resets == [True, False, True, False, True, False]
    assert core.resets == 3
    assert core.backend.inputs['ego_motion'][0] == pytest.approx([1.0, 0.0, 0.0])  # 1 m ahead
    assert np.abs(core.backend.inputs['previous_bev']).sum() > 0


def test_missing_camera_is_left_out_of_the_view_transform(core):
    valid = np.ones(CONFIG.num_cameras, bool)
    valid[0] = False  # front camera gone
    core.step(frame(0, valid=valid))
    weight = core.backend.inputs['lut_weight']
    heights = len(CONFIG.lut_heights_m)
    assert weight[:, :heights].sum() == 0.0  # no front-camera sample contributes
    sums = weight.sum(axis=1)
    assert np.all(np.isclose(sums, 1.0) | (sums == 0.0))
    core.step(frame(100))
    assert core.backend.inputs['lut_weight'][:, :heights].sum() > 0  # back with the camera


def test_non_finite_outputs_are_refused_and_reset_the_state(model):
    class Broken(TorchBackend):
        def run(self, inputs):
            outputs = super().run(inputs)
            outputs['trajectories'][0, 0, 0, 0] = np.nan
            return outputs

    core = InferenceCore(CONFIG, Broken(model), fake_encoder)
    with pytest.raises(InvalidModelOutputError, match='returned NaN or infinity'):
        core.step(frame(0))
    core.backend = TorchBackend(model)
    assert core.step(frame(100)).temporal_reset


def test_instruction_changes_the_plan_input(core):
    core.step(frame(0))
    before = core.backend.inputs['instruction'].copy()
    core.set_instruction('take the next exit')
    core.step(frame(100))
    assert not np.array_equal(before, core.backend.inputs['instruction'])
    assert np.array_equal(
        core.backend.inputs['instruction'][0], fake_encoder('take the next exit')
    )


def test_onnxruntime_and_pytorch_backends_plan_the_same(model, tmp_path):
    onnx_path = export_onnx(model, tmp_path / 'student.onnx')
    torch_core = InferenceCore(CONFIG, TorchBackend(model), fake_encoder)
    onnx_core = InferenceCore(CONFIG, OnnxRuntimeBackend(onnx_path), fake_encoder)
    for stamp in (0, 100, 200):  # the temporal state goes through both the same way
        expected, actual = (
            torch_core.step(frame(stamp, x=stamp / 100)),
            onnx_core.step(frame(stamp, x=stamp / 100)),
        )
        assert np.abs(expected.candidates - actual.candidates).max() <= 1e-4
        assert expected.selected == actual.selected
    assert select_backend('auto', model, onnx_path).name == 'onnxruntime'
    # onnxruntime_threads reaches the session; 0 keeps ONNX Runtime's own choice.
    for threads in (0, 1):
        backend = select_backend('onnxruntime', model, onnx_path, intra_op_threads=threads)
        assert backend.session.get_session_options().intra_op_num_threads == threads


def test_backend_selection_without_export_and_refusals(model):
    assert select_backend('auto', model, None).name == 'pytorch'
    with pytest.raises(ValueError, match="backend 'cuda' is not one of auto, torch, onnxruntime"):
        select_backend('cuda', model, None)
    with pytest.raises(ValueError, match='onnxruntime needs an ONNX export'):
        select_backend('onnxruntime', model, None)


def test_a_v2_student_reads_the_instructions_age_and_spoken_speed():
    config = student_v2()
    torch.manual_seed(1)
    v2 = InferenceCore(config, Recording(TorchBackend(build_network(config).eval())), fake_encoder)
    v2.set_instruction('Set your speed to 50 km/h.', given_ns=1_000 * MS)
    for stamp_ms, age_s in ((1_000, 0.0), (3_500, 2.5), (30_000, 10.0)):  # capped at 10 s
        v2.step(frame(stamp_ms))
        assert v2.backend.inputs['ego_state'][0].tolist() == pytest.approx([10.0, 0, 0, age_s])
    slot = v2.backend.inputs['instruction'][0, config.instruction_dim :]
    assert slot.tolist() == pytest.approx(speed_slot('Set your speed to 50 km/h.').tolist())
    v2.set_instruction('keep your lane')  # no stamp: given with the next frame
    v2.step(frame(31_000))
    v2.step(frame(31_100))
    assert v2.backend.inputs['ego_state'][0, 3] == pytest.approx(0.1)
    assert v2.backend.inputs['instruction'][0, config.instruction_dim] == 0.0  # no speed said


def sample_cameras(index: np.ndarray, config) -> np.ndarray:
    """Return the camera each look-up-table sample reads (num_cameras: the zero feature)."""
    feature_h, feature_w = config.feature_size
    return index // (max(config.depth_bins, 1) * feature_h * feature_w)


def test_a_v2_student_plans_without_a_camera_whose_calibration_is_a_placeholder():
    """The node gives a camera without an image an identity K: it must take no sample.

    With an identity K that camera would see most of the grid, more cameras per cell than v2's
    compact look-up table holds (the replay regression's camera_dropout case found it).
    """
    config = student_v2()
    torch.manual_seed(1)
    v2 = InferenceCore(config, Recording(TorchBackend(build_network(config).eval())), fake_encoder)
    cameras = list(rig_cameras(config=config))
    cameras[0] = CameraGeometry(np.eye(3), cameras[0].rotation, cameras[0].translation)
    valid = np.arange(config.num_cameras) != 0  # the front camera sends nothing
    plan = v2.step(replace(frame(0, valid=valid), cameras=tuple(cameras)))
    assert np.isfinite(plan.trajectory).all()
    assert 0 not in sample_cameras(v2.backend.inputs['lut_index'], config)
    sums = v2.backend.inputs['lut_weight'].sum(axis=1)
    assert np.all(np.isclose(sums, 1.0) | (sums == 0.0)) and sums.max() == pytest.approx(1.0)
    v2.step(frame(100))  # the camera is back, calibrated: its samples return
    assert 0 in sample_cameras(v2.backend.inputs['lut_index'], config)


def test_cameras_that_overlap_more_than_the_model_holds_make_the_frame_unplannable():
    config = student_v2()
    v2 = InferenceCore(config, TorchBackend(build_network(config).eval()), fake_encoder)
    cameras = list(rig_cameras(config=config))
    cameras[0] = CameraGeometry(np.eye(3), cameras[0].rotation, cameras[0].translation)
    seeing_everything = replace(frame(0), cameras=tuple(cameras))  # marked valid
    with pytest.raises(UnplannableFrameError, match='more than the model lut_samples 4'):
        v2.step(seeing_everything)


def test_a_camera_that_drops_out_and_returns_costs_no_rebuild_of_the_look_up_table(
    core, monkeypatch
):
    built = []
    real = inference_core.build_view_lut
    monkeypatch.setattr(
        inference_core,
        'build_view_lut',
        lambda *args: built.append(args[2].tolist()) or real(*args),
    )
    front_gone = np.arange(CONFIG.num_cameras) != 0
    for stamp_ms, valid in enumerate((None, front_gone, None, front_gone, None)):
        core.step(frame(stamp_ms * 100, valid=valid))
    assert built == [[True] * CONFIG.num_cameras, front_gone.tolist()]  # each set built once
