"""The driving network: shapes, camera geometry, ego warp, map prior, artifacts, ONNX parity."""

import json
from dataclasses import replace

import numpy as np
import onnxruntime
import pytest
import torch

from repo_paths import REPO_ROOT, run_vla
from vla_model.anchors import make_anchors
from vla_model.artifacts import ArtifactError, load_weights, save_weights, sha256_file
from vla_model.bev_geometry import (
    CameraGeometry,
    build_view_lut,
    cell_centres,
    depth_bin,
    project,
    rotation_from_quaternion,
    view_weight,
)
from vla_model.config import ModelConfig, student, teacher
from vla_model.export import example_inputs, export_onnx
from vla_model.instruction_encoder import (
    DEFAULT_INSTRUCTION,
    InstructionEncoder,
    check_instruction,
)
from vla_model.network import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    INPUT_NAMES,
    Backbone,
    VlaNet,
    lift,
    warp,
)
from vla_model.student_network import student_v2
from vla_perception.rig import RigConfig

CONFIG = student()


def rig_cameras(config: ModelConfig = CONFIG) -> list[CameraGeometry]:
    """Return the default rig with a 90-degree field of view at the model's image size."""
    rig = RigConfig.from_file(REPO_ROOT / 'vla_ros' / 'config' / 'rig_surround.yaml')
    focal = config.image_width / 2  # tan(45 deg) = 1
    k = np.array(
        [
            [focal, 0, config.image_width / 2 - 0.5],
            [0, focal, config.image_height / 2 - 0.5],
            [0, 0, 1],
        ]
    )
    return [
        CameraGeometry(k, rotation_from_quaternion(c.rotation), np.array(c.translation))
        for c in rig.cameras
    ]


def run(net: VlaNet, inputs: dict[str, np.ndarray]) -> tuple[torch.Tensor, ...]:
    with torch.inference_mode():
        return net(*[torch.from_numpy(inputs[name]) for name in INPUT_NAMES])


@pytest.fixture(scope='module')
def net() -> VlaNet:
    torch.manual_seed(0)
    return VlaNet(CONFIG).eval()


def test_output_shapes_and_anchor_units(net):
    trajectories, scores, semantics, rationale, bev = run(net, example_inputs(CONFIG, batch=2))
    rows, cols = CONFIG.bev_size
    assert trajectories.shape == (2, CONFIG.num_anchors, CONFIG.horizon_steps, 3)
    assert scores.shape == (2, CONFIG.num_anchors)
    assert semantics.shape == (2, len(CONFIG.bev_classes), rows, cols)
    assert rationale.shape == (2, len(CONFIG.rationales))
    assert bev.shape == (2, CONFIG.bev_channels, rows, cols)
    anchors = make_anchors(CONFIG)
    assert CONFIG.horizon_steps * CONFIG.step_s >= 3.0  # at least 3 s ahead
    assert anchors[3, -1, 0] == pytest.approx(20.0 * 3.0)  # 20 m/s for 3 s, in metres
    assert np.abs(anchors[..., 2]).max() < np.pi  # headings in radians


@pytest.mark.parametrize('stride', [4, 8])
def test_the_stem_s_folded_normalisation_equals_normalising_every_pixel(stride):
    torch.manual_seed(0)
    backbone = Backbone((16, 32), 24, stride)
    pixels = torch.randint(0, 256, (2, 3, 64, 96)).float()
    normalised = (pixels / 255.0 - IMAGENET_MEAN.view(1, 3, 1, 1)) / IMAGENET_STD.view(1, 3, 1, 1)
    for mode in (backbone.train, backbone.eval):
        mode()
        expected = backbone.project(backbone.stages(normalised))
        torch.testing.assert_close(backbone(pixels), expected, rtol=1e-4, atol=1e-4)


def test_teacher_is_larger_than_student():
    def size(config):
        return sum(p.numel() for p in VlaNet(config).parameters())

    assert size(teacher()) > 2 * size(student())


def test_lut_sends_a_ground_point_to_the_feature_cell_the_pinhole_model_predicts():
    cameras = rig_cameras()
    lut = build_view_lut(CONFIG, cameras)
    centres = cell_centres(CONFIG).reshape(-1, 2)
    cell = int(np.argmin(np.linalg.norm(centres - [20.5, 0.5], axis=1)))
    point = np.array([[*centres[cell], 0.0]])
    front = cameras[0]
    # By hand: the front camera looks along +x from (1.7, 0, 1.5); optical z = x, x = -y, y = -z.
    rel = point[0] - front.translation
    u = front.k[0, 0] * (-rel[1]) / rel[0] + front.k[0, 2]
    v = front.k[1, 1] * (-rel[2]) / rel[0] + front.k[1, 2]
    assert project(point, front)[0][0] == pytest.approx([u, v])
    feature_h, feature_w = CONFIG.feature_size
    stride = CONFIG.feature_stride
    expected = int(v // stride) * feature_w + int(u // stride)  # camera 0, height 0 m
    assert lut.index[cell, 0] == expected
    assert lut.weight[cell].sum() == pytest.approx(1.0)


def test_lut_ignores_points_behind_a_camera_and_normalises_weights():
    lut = build_view_lut(CONFIG, rig_cameras())
    sums = lut.weight.sum(axis=1)
    assert np.all(np.isclose(sums, 1.0) | (sums == 0.0))
    empty = CONFIG.num_cameras * CONFIG.feature_size[0] * CONFIG.feature_size[1]
    assert np.all(lut.index[lut.weight == 0] == empty)  # unseen samples read the zero feature
    centres = cell_centres(CONFIG).reshape(-1, 2)
    behind = int(np.argmin(np.linalg.norm(centres - [-10.5, 0.5], axis=1)))
    assert lut.weight[behind, 0] == 0.0 and lut.weight[behind, 1] == 0.0  # not the front camera


def test_a_compact_lut_lifts_the_same_bev_as_one_sample_per_camera_and_height():
    compact = student_v2()
    full = replace(compact, lut_samples=0)
    assert compact.samples_per_cell < full.samples_per_cell
    cameras = rig_cameras(config=compact)
    luts = [build_view_lut(config, cameras) for config in (full, compact)]
    features = np.random.default_rng(0).normal(size=(5, luts[0].index.max() + 1))
    features[:, -1] = 0.0  # the zero feature unseen samples read
    for valid in (np.ones(compact.num_cameras, bool), np.arange(compact.num_cameras) != 2):
        lifted = [
            (features[:, lut.index] * view_weight(lut.cameras, valid)).sum(-1) for lut in luts
        ]
        np.testing.assert_allclose(lifted[0], lifted[1], atol=1e-12)


def test_a_depth_lut_names_each_samples_pixel_and_the_cells_depth_bin_in_that_camera():
    config = student_v2()
    flat = replace(config, depth_bins=0)
    cameras = rig_cameras(config=config)
    with_depth, without = build_view_lut(config, cameras), build_view_lut(flat, cameras)
    np.testing.assert_array_equal(with_depth.index // config.depth_bins, without.index)
    centres = cell_centres(config).reshape(-1, 2)
    cell = int(np.argmin(np.linalg.norm(centres - [20.5, 0.5], axis=1)))
    _, depth = project(np.array([[*centres[cell], 0.0]]), cameras[0])  # front camera, ground
    assert with_depth.index[cell, 0] % config.depth_bins == depth_bin(depth, config.depth_bins)[0]


class FixedFeatures(torch.nn.Module):
    """A stand-in backbone: every pixel the same feature, and the same depth bin, certain."""

    def __init__(self, config: ModelConfig, depth_bin_of_every_pixel: int) -> None:
        super().__init__()
        self.config = config
        self.bin = depth_bin_of_every_pixel

    def backbone(self, pixels: torch.Tensor) -> torch.Tensor:
        """Return feature 1 and logits certain of the chosen bin at every pixel."""
        feature_h, feature_w = self.config.feature_size
        features = torch.ones(len(pixels), 1 + self.config.depth_bins, feature_h, feature_w)
        features[:, 1:] = -30.0
        features[:, 1 + self.bin] = 30.0
        return features


def test_the_depth_weighted_lift_puts_a_pixel_only_on_the_cells_at_its_depth():
    config = student_v2()
    lut = build_view_lut(config, rig_cameras(config=config))
    images = torch.zeros(1, config.num_cameras, config.image_height, config.image_width, 3)
    chosen = 7
    bev, depth = lift(
        FixedFeatures(config, chosen),
        images,
        torch.from_numpy(lut.index),
        torch.from_numpy(lut.weight),
    )
    assert depth.shape == (config.num_cameras, config.depth_bins, *config.feature_size)
    at_depth = ((lut.index % config.depth_bins == chosen) * lut.weight).sum(-1)
    np.testing.assert_allclose(bev[0, 0].numpy().ravel(), at_depth, atol=1e-6)
    assert at_depth.max() > 0.99 and (at_depth == 0).mean() > 0.5


def test_a_rig_seen_by_more_samples_than_the_model_keeps_is_refused():
    full = build_view_lut(student_v2(lut_samples=0), rig_cameras(config=student_v2()))
    most = int((full.cameras >= 0).sum(axis=1).max())
    fewer = student_v2(lut_samples=most - 1)
    with pytest.raises(ValueError, match=f'seen by {most} camera samples, more than the model'):
        build_view_lut(fewer, rig_cameras(config=fewer))


def hot_cell_after_warp(net: VlaNet, x: float, y: float, motion: tuple[float, float, float]):
    rows, cols = CONFIG.bev_size
    previous = torch.zeros(1, 1, rows, cols)
    centres = cell_centres(CONFIG)
    row, col = np.unravel_index(np.argmin(np.linalg.norm(centres - [x, y], axis=-1)), (rows, cols))
    previous[0, 0, row, col] = 1.0
    warped = warp(net, previous, torch.tensor([motion], dtype=torch.float32))[0, 0].numpy()
    return centres[np.unravel_index(np.argmax(warped), (rows, cols))], warped.max()


@pytest.mark.parametrize(
    ('motion', 'before', 'after'),
    [
        ((2.0, 0.0, 0.0), (10.5, 0.5), (8.5, 0.5)),  # drove 2 m forward: things come 2 m closer
        ((0.0, -3.0, 0.0), (10.5, 0.5), (10.5, 3.5)),  # moved 3 m right: things move left
        ((0.0, 0.0, np.pi / 2), (10.5, 0.5), (0.5, -10.5)),  # turned left 90 deg
    ],
)
def test_bev_warp_moves_features_by_the_ego_motion(net, motion, before, after):
    location, value = hot_cell_after_warp(net, *before, motion)
    assert location == pytest.approx(after, abs=1e-4)
    assert value == pytest.approx(1.0, abs=1e-4)


def test_absent_map_prior_is_ignored_whatever_it_holds(net):
    inputs = example_inputs(CONFIG)
    inputs['map_prior_present'][:] = 0.0
    first = run(net, inputs)
    inputs['map_prior'] = np.random.default_rng(9).random(
        inputs['map_prior'].shape, dtype=np.float32
    )
    second = run(net, inputs)
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    inputs['map_prior_present'][:] = 1.0
    assert not torch.equal(run(net, inputs)[0], first[0])


def test_same_inputs_give_identical_outputs(net):
    inputs = example_inputs(CONFIG, seed=4)
    assert all(torch.equal(a, b) for a, b in zip(run(net, inputs), run(net, inputs), strict=True))


def test_onnx_export_matches_pytorch(net, tmp_path):
    path = export_onnx(net, tmp_path / 'student.onnx')
    assert [p.name for p in tmp_path.iterdir()] == ['student.onnx']  # no external weights file
    session = onnxruntime.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    assert [i.name for i in session.get_inputs()] == list(INPUT_NAMES)
    inputs = example_inputs(CONFIG, seed=11)
    for name, reference, exported in zip(
        ('trajectories', 'scores', 'semantics', 'rationale', 'bev'),
        run(net, inputs),
        session.run(None, inputs),
        strict=True,
    ):
        assert np.abs(reference.numpy() - exported).max() <= 1e-4, name


def test_weights_round_trip_through_safetensors(net, tmp_path):
    path = tmp_path / 'student.safetensors'
    digest = save_weights(net, path)
    assert digest == sha256_file(path)
    loaded = load_weights(path, expected_sha256=digest)
    assert loaded.config == net.config
    inputs = example_inputs(CONFIG)
    assert all(
        torch.equal(a, b) for a, b in zip(run(net, inputs), run(loaded, inputs), strict=True)
    )


def test_pinned_hash_mismatch_and_missing_file_are_refused(net, tmp_path):
    path = tmp_path / 'student.safetensors'
    digest = save_weights(net, path)
    wrong = '0' * 64
    with pytest.raises(ArtifactError, match=f'{path} has SHA-256 {digest}, but {wrong} is pinned'):
        load_weights(path, expected_sha256=wrong)
    with pytest.raises(ArtifactError, match='nope.safetensors does not exist'):
        load_weights(tmp_path / 'nope.safetensors')


def test_config_survives_json():
    assert ModelConfig.from_json(teacher().to_json()) == teacher()


@pytest.fixture(scope='module')
def encoder() -> InstructionEncoder:
    return InstructionEncoder(cache_size=2)


def test_instruction_embedding_is_cached_and_means_something(encoder):
    exit_a = encoder.encode('take the next exit')
    exit_b = encoder.encode('Take the next exit')
    stop = encoder.encode('stop behind the truck')
    assert exit_a.shape == (384,) and exit_a.dtype == np.float32
    assert np.linalg.norm(exit_a) == pytest.approx(1.0, abs=1e-5)
    assert float(exit_a @ exit_b) > 0.9 > float(exit_a @ stop) + 0.3  # paraphrase vs other intent
    encoded = encoder.encoded
    assert encoder.encode('  Take the   next exit ') is exit_b  # whitespace-normalised, cached
    assert encoder.encoded == encoded


def test_empty_huge_and_foreign_instructions_are_flagged(encoder):
    empty = check_instruction('   ')
    assert (empty.text, empty.empty, empty.truncated) == (DEFAULT_INSTRUCTION, True, False)
    huge = check_instruction('go ' * 500_000)  # a 1.5 MB instruction
    assert len(huge.text) == 1000 and huge.truncated and not huge.empty
    controlled = check_instruction('keep\x00 the\x1b[2J lane\x07\x7f')
    assert controlled.control_characters and controlled.text == 'keep the [2J lane'
    assert not check_instruction('keep\tthe lane\n').control_characters
    assert check_instruction('左转，然后在下一个出口离开').mostly_non_ascii
    assert not check_instruction('Nimm die nächste Ausfahrt').mostly_non_ascii
    assert np.array_equal(encoder.encode(''), encoder.encode(DEFAULT_INSTRUCTION))
    assert np.isfinite(encoder.encode('x' * 1_000_000)).all()


def test_model_benchmark_command_prints_and_writes_both_backends(tmp_path):
    path = tmp_path / 'model.json'
    result = run_vla('bench', 'model', '--repeats', '3', '--json', str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'ORT speedup' in result.stdout
    report = json.loads(path.read_text())
    measured, v2 = report['results']
    assert measured['model'] == 'vla-student' and measured['gflops'] > 0
    assert v2['model'] == 'vla-student-v2' and v2['gflops'] < measured['gflops']
    assert report['v2_to_v1_onnxruntime_p50'] == pytest.approx(
        v2['onnxruntime']['p50_ms'] / measured['onnxruntime']['p50_ms'], rel=0.01
    )
    assert 0 < measured['onnxruntime']['p50_ms'] <= measured['onnxruntime']['p99_ms']
    assert measured['onnxruntime_speedup'] == pytest.approx(
        measured['pytorch']['p50_ms'] / measured['onnxruntime']['p50_ms'], rel=0.01
    )
