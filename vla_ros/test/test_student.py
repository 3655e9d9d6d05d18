"""Model v2's camera student: its rendered data, its network, its distillation, training."""

import argparse
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch

from repo_paths import run_vla
from vla_model.artifacts import ArtifactError, load_weights, save_teacher, save_weights
from vla_model.camera_dataset import (
    CAMERA_SOURCES,
    CameraDatasetSettings,
    load_camera_samples,
)
from vla_model.checkpoint import latest_checkpoint
from vla_model.config import MAP_PRIOR_LAYERS, PRIVILEGED_CHANNELS, VELOCITY_SCALE_MPS, student
from vla_model.driving_labels import in_frame_of
from vla_model.export import example_inputs, export_onnx
from vla_model.losses import mask_iou, plan_distillation_loss, velocity_loss
from vla_model.network import INPUT_NAMES, OUTPUT_NAMES
from vla_model.neural_map_eval import DISTANCE_BANDS_M, band_masks, iou_table, neural_map_iou
from vla_model.privileged_dataset import DatasetError, prepare_dataset
from vla_model.student_network import (
    NEURAL_MAP_CLASSES,
    NeuralMap,
    NeuralMapStudent,
    build_network,
    student_for,
    student_v2,
)
from vla_model.student_training import StudentTrainConfig, train_student
from vla_model.teacher_network import PrivilegedTeacher, TeacherConfig
from vla_sim import camera_data as camera_recording
from vla_sim.camera_data import (
    CameraRecordSettings,
    add_student_record_arguments,
    record_camera_dataset,
    record_camera_episode,
    run_student_record,
)
from vla_sim.camera_renderer import CameraRenderer
from vla_sim.instructions import Intent
from vla_sim.pipeline_driver import PipelineDriver
from vla_sim.scenarios import get_scenario
from vla_sim.simulation import SimConfig, SimulationCore
from vla_sim.teacher_data import (
    FAMILIES,
    LANE_CHANGES,
    EpisodeTask,
    instruction_for,
    teacher_raster,
)
from vla_tools.model_benchmark import gflops

CHANNEL = {name: index for index, name in enumerate(PRIVILEGED_CHANNELS)}
KEEP = 40
TASK = EpisodeTask('highway', 3, Intent.KEEP_LANE, None)


@pytest.fixture(scope='module')
def camera_data(tmp_path_factory, rig) -> Path:
    folder = tmp_path_factory.mktemp('cameras')
    prepare_dataset(folder, CameraDatasetSettings.of(TeacherConfig(), rig))
    settings = CameraRecordSettings(keep_every=KEEP, counterfactuals=3)
    assert record_camera_episode(TASK, folder, TeacherConfig(), settings) > 3
    return folder


@pytest.fixture(scope='module')
def teacher_file(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp('teacher') / 'teacher.safetensors'
    save_teacher(PrivilegedTeacher(TeacherConfig()).eval(), path)
    return path


@pytest.fixture(scope='module')
def student_file(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp('student') / 'student.safetensors'
    save_weights(NeuralMapStudent(student_v2()).eval(), path)
    return path


def samples_of(folder: Path, rig):
    return load_camera_samples([folder], CameraDatasetSettings.of(TeacherConfig(), rig))


def test_a_kept_state_holds_both_frames_and_what_the_teacher_reads(camera_data, rig):
    samples = samples_of(camera_data, rig)
    assert samples.source.tolist() == [CAMERA_SOURCES.index('expert')] * len(samples)
    # Drive the same seeded episode again and compare each kept state with the truth there.
    core = SimulationCore(
        get_scenario(TASK.scenario),
        TASK.seed,
        rig,
        SimConfig(render=False),
        instruction=instruction_for(TASK.intent, None, TASK.seed),
    )
    renderer = CameraRenderer(rig)
    poses, frames = [], {}
    while not core.done:
        pose = core.frame.ego.pose
        poses.append((pose.x, pose.y, pose.yaw))
        if core.steps % KEEP in (0, KEEP - 1):
            frames[core.steps] = (
                renderer.render(core.frame.scene),
                teacher_raster(core, core.frame),
            )
        core.step(core.expert_decision().command)
    poses.append((core.frame.ego.pose.x, core.frame.ego.pose.y, core.frame.ego.pose.yaw))
    poses = np.asarray(poses)
    rasters = samples.rasters(np.arange(len(samples)), PRIVILEGED_CHANNELS)
    for state in range(len(samples)):
        step = KEEP * (state + 1)  # step 0 has no frame before it
        images = samples.images(state, len(rig.names))
        for frame, at in enumerate((step - 1, step)):
            rendered = np.stack([frames[at][0][name] for name in rig.names])
            assert np.abs(images[frame].astype(float) - rendered).mean() < 3.0  # JPEG
        masks = [CHANNEL[n] for n in PRIVILEGED_CHANNELS if n not in ('vehicle_vx', 'vehicle_vy')]
        np.testing.assert_array_equal(rasters[state, masks], frames[step][1][masks])
        np.testing.assert_allclose(
            rasters[state, CHANNEL['vehicle_vx']],
            frames[step][1][CHANNEL['vehicle_vx']],
            atol=0.125 / VELOCITY_SCALE_MPS,
        )
        np.testing.assert_allclose(
            samples.ego_motion[state],
            in_frame_of(poses[step - 1], poses[step : step + 1])[0],
            atol=1e-4,
        )
        if samples.trajectory_valid[state]:
            future = poses[step + 5 * np.arange(1, 7)]
            np.testing.assert_allclose(
                samples.trajectory[state], in_frame_of(poses[step], future), atol=1e-4
            )
    assert samples.trajectory_valid[:-1].all()


def test_the_student_drives_and_the_images_it_saw_are_stored(
    camera_data, student_file, rig, tmp_path, monkeypatch
):
    short = replace(get_scenario(TASK.scenario), duration_s=4.0)  # 40 steps: 3 kept states
    monkeypatch.setattr(camera_recording, 'get_scenario', lambda name: short)
    student = PipelineDriver(rig, weights=student_file, cache_dir=tmp_path, name='student')
    seen: dict[int, dict[str, np.ndarray]] = {}
    drive = student.drive

    def watched(core, frame):
        seen[core.steps] = frame.images
        return drive(core, frame)

    monkeypatch.setattr(student, 'drive', watched)
    folder = tmp_path / 'cameras_student'
    prepare_dataset(folder, CameraDatasetSettings.of(TeacherConfig(), rig))
    settings = CameraRecordSettings(keep_every=10, counterfactuals=3)
    assert record_camera_episode(TASK, folder, TeacherConfig(), settings, student) == 3
    assert len(seen) == 40  # the student drove every step, from rendered images

    samples = load_camera_samples(
        [camera_data, folder], CameraDatasetSettings.of(TeacherConfig(), rig)
    )
    sources = [CAMERA_SOURCES[s] for s in samples.source]
    assert sources.count('student') == 3 and set(sources) == {'expert', 'student'}
    first = sources.index('student')
    assert not samples.trajectory_valid[first:].any()  # only the expert's future is a label
    for state in range(3):
        images = samples.images(first + state, len(rig.names))
        width, height = rig.cameras[0].intrinsics.width, rig.cameras[0].intrinsics.height
        assert images.shape == (2, len(rig.names), height, width, 3)
        step = 10 * (state + 1)
        for frame, seen_step in enumerate((step - 1, step)):
            for camera, name in enumerate(rig.names):  # JPEG's error is about a grey level
                error = np.abs(images[frame, camera].astype(float) - seen[seen_step][name])
                assert error.mean() < 3.0, (state, frame, name)


def test_a_student_recording_with_both_drivers_or_no_weights_is_refused(
    tmp_path, teacher_file, student_file, capsys
):
    parser = argparse.ArgumentParser()
    add_student_record_arguments(parser)

    def refusal(*extra: str) -> str:
        args = parser.parse_args([str(tmp_path / 'out'), '--no-progress', *extra])
        assert run_student_record(args) == 1
        error = capsys.readouterr().err
        assert error.count('\n') == 1
        return error

    both = ('--teacher-weights', str(teacher_file), '--student-weights', str(student_file))
    assert 'not both' in refusal(*both)
    missing = tmp_path / 'missing.safetensors'
    assert str(missing) in refusal('--student-weights', str(missing))
    assert '--student-weights' in refusal('--map-prior', 'off')
    assert not (tmp_path / 'out').exists()


def test_a_camera_data_set_begun_by_another_driver_is_refused(tmp_path, student_file):
    folder = tmp_path / 'cameras'
    record_camera_dataset(folder, 0, 300_000, 1, progress=False, student_weights=student_file)
    with pytest.raises(DatasetError, match='driver.json.*map_prior'):
        record_camera_dataset(
            folder, 0, 300_000, 1, progress=False, student_weights=student_file, map_prior=False
        )
    with pytest.raises(DatasetError, match='driver.json.*source, weights_sha256'):
        record_camera_dataset(folder, 0, 300_000, 1, progress=False)


def test_other_instructions_are_stored_with_each_state(camera_data, rig):
    samples = samples_of(camera_data, rig)
    family = {intent.value for intent in FAMILIES[TASK.scenario][1]}
    lane_changes = {intent.value for intent in LANE_CHANGES}
    for own, others, ages in zip(
        samples.text_index, samples.counterfactual_index, samples.counterfactual_age, strict=True
    ):
        assert samples.intents[own] == TASK.intent.value
        intents = [samples.intents[i] for i in others if i >= 0]
        assert len(intents) == 3 and TASK.intent.value not in intents
        assert set(intents) <= family
        for intent, age in zip(intents, ages, strict=False):
            assert age == 0.0 if intent in lane_changes else 0.0 <= age <= 10.0


def test_a_data_set_of_another_rig_is_refused(camera_data, rig):
    moved = replace(rig.cameras[0], translation=(1.8, 0.0, 1.5))
    other = replace(rig, cameras=(moved, *rig.cameras[1:]))
    with pytest.raises(DatasetError, match='rig_sha256'):
        samples_of(camera_data, other)


def test_the_student_keeps_v1s_interface_at_under_a_gigaflop():
    config = student_v2()
    torch.manual_seed(0)
    model = build_network(config).eval()
    assert isinstance(model, NeuralMapStudent)
    inputs = example_inputs(config)
    with torch.inference_mode():
        outputs = model(*(torch.from_numpy(inputs[name]) for name in INPUT_NAMES))
    shapes = dict(zip(OUTPUT_NAMES, (tuple(o.shape) for o in outputs), strict=True))
    rows, cols = config.bev_size
    assert shapes == {
        'trajectories': (1, config.num_anchors, config.horizon_steps, 3),
        'scores': (1, config.num_anchors),
        'bev_semantics': (1, len(NEURAL_MAP_CLASSES), rows, cols),
        'rationale': (1, len(config.rationales)),
        'bev_features': (1, config.bev_channels, rows, cols),
    }
    assert gflops(model, inputs) <= 1.0


@pytest.mark.parametrize('grounded', [False, True])
def test_the_student_exports_and_onnx_runtime_agrees(tmp_path, grounded):
    """Grounded: the teacher's instruction grounding moves into the student and its ONNX graph."""
    teacher = (
        TeacherConfig(grounding_texts=5, grounding_intents=2) if grounded else TeacherConfig()
    )
    config = student_for(teacher)
    torch.manual_seed(0)
    model = build_network(config).eval()
    if grounded:
        rng = np.random.default_rng(0)
        texts = rng.normal(size=(5, config.instruction_dim)).astype(np.float32)
        model.planner.grounding.fit(texts, ['keep_lane'] * 2 + ['set_speed'] * 3)
    inputs = example_inputs(config)
    path = export_onnx(model, tmp_path / 'student.onnx')
    session = onnxruntime.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    exported = session.run(list(OUTPUT_NAMES), inputs)
    with torch.inference_mode():
        reference = model(*(torch.from_numpy(inputs[name]) for name in INPUT_NAMES))
    for got, expected in zip(exported, reference, strict=True):
        np.testing.assert_allclose(got, expected.numpy(), rtol=1e-3, atol=1e-3)
    save_weights(model, tmp_path / 'student.safetensors')
    loaded = load_weights(tmp_path / 'student.safetensors')
    assert isinstance(loaded, NeuralMapStudent) and loaded.config == config
    assert (loaded.planner.grounding is None) == (not grounded)
    if grounded:
        assert torch.equal(
            loaded.planner.grounding.text_embeddings, model.planner.grounding.text_embeddings
        )


def test_a_teacher_of_another_shape_cannot_plan_for_the_student():
    with pytest.raises(ValueError, match='another configuration'):
        student_for(TeacherConfig(widths=(16, 32, 64)))


def test_the_planner_reads_the_map_in_the_teachers_channels():
    config = student_v2(bev_classes=('drivable', 'lane_marking', 'vehicle'))
    model = NeuralMapStudent(config)
    rows, cols = config.bev_size
    logits = torch.full((1, 3, rows, cols), -20.0)
    logits[0, 0] = 20.0  # all drivable
    logits[0, 2, 5, 5] = 20.0  # one vehicle cell
    velocity = torch.full((1, 2, rows, cols), 0.7)
    no_prior = torch.zeros(1, config.map_prior_channels, rows, cols)
    raster = model.planner_raster(logits, velocity, no_prior, torch.zeros(1, 1))[0]
    assert raster.shape[0] == len(PRIVILEGED_CHANNELS)
    assert torch.allclose(raster[CHANNEL['drivable']], torch.ones(rows, cols))
    assert raster[CHANNEL['vehicle_vx'], 5, 5] == pytest.approx(0.7)
    assert raster[CHANNEL['vehicle_vx']].sum() == pytest.approx(0.7, abs=1e-3)  # only there
    assert raster[CHANNEL['exit_lane']].abs().sum() == 0  # not predicted: nothing
    assert raster[CHANNEL['route_lanes']].abs().sum() == 0


def test_where_the_map_prior_is_given_the_planner_reads_its_layers_and_the_route():
    config = student_v2()
    rows, cols = config.bev_size
    logits = torch.full((2, len(config.bev_classes), rows, cols), -20.0)
    logits[:, config.bev_classes.index('route_lanes'), :, :10] = 20.0  # drawn: the left branch
    velocity = torch.zeros(2, 2, rows, cols)
    prior = torch.zeros(2, 3, rows, cols)
    prior[:, MAP_PRIOR_LAYERS.index('route_lanes'), :, 30:] = 1.0  # the map's: the right one
    prior[:, MAP_PRIOR_LAYERS.index('drivable')] = 1.0
    present = torch.tensor([[1.0], [0.0]])  # the first state mapped, the second map-free
    mapped, map_free = NeuralMapStudent(config).planner_raster(logits, velocity, prior, present)
    drawn = torch.zeros(rows, cols)
    drawn[:, :10] = 1.0
    given = prior[0, MAP_PRIOR_LAYERS.index('route_lanes')]
    assert torch.equal(mapped[CHANNEL['route_lanes']], given)
    assert torch.equal(mapped[CHANNEL['drivable']], torch.ones(rows, cols))
    assert torch.allclose(map_free[CHANNEL['route_lanes']], drawn)
    assert map_free[CHANNEL['drivable']].max() < 1e-6  # its own map: no road drawn
    # A student that does not read the prior (the first v2) plans on its own map, given or not.
    own = NeuralMapStudent(replace(config, planner_reads_map_prior=False))
    assert torch.allclose(own.planner_raster(logits, velocity, prior, present)[0], map_free)
    with pytest.raises(ValueError, match='needs the neural_map planner'):
        replace(student(), planner_reads_map_prior=True)


def test_a_new_student_plans_as_its_teacher_on_the_same_map():
    torch.manual_seed(0)
    teacher = PrivilegedTeacher(TeacherConfig()).eval()
    model = NeuralMapStudent(student_v2()).eval()
    model.planner.load_state_dict(teacher.state_dict())
    raster = torch.rand(2, len(PRIVILEGED_CHANNELS), *student_v2().bev_size)
    ego, instruction = torch.rand(2, 4), torch.rand(2, student_v2().instruction_input_dim)
    with torch.inference_mode():
        for got, expected in zip(
            model.planner(raster, ego, instruction), teacher(raster, ego, instruction), strict=True
        ):
            assert torch.equal(got, expected)


def test_plan_distillation_matches_the_plans_the_teacher_would_drive():
    torch.manual_seed(0)
    teacher = torch.randn(1, 4, 6, 3)
    scores = torch.tensor([[10.0, 0.0, -10.0, -10.0]])
    trajectory, score = plan_distillation_loss(teacher, scores, teacher, scores, weighted=True)
    assert trajectory.item() == 0.0 and score.abs().item() < 1e-6
    # Wrong where the teacher never drives: weighted, it barely counts; unweighted, it does.
    student = teacher.clone()
    student[0, 3] += 5.0
    weighted, _ = plan_distillation_loss(student, scores, teacher, scores, weighted=True)
    uniform, _ = plan_distillation_loss(student, scores, teacher, scores, weighted=False)
    assert weighted.item() < 1e-6 < uniform.item()
    wrong_best = teacher.clone()
    wrong_best[0, 0] += 5.0
    assert plan_distillation_loss(wrong_best, scores, teacher, scores, weighted=True)[0] > 4.0


def test_velocity_and_iou_look_only_where_they_should():
    target = torch.zeros(1, 2, 4, 4)
    vehicle = torch.zeros(1, 1, 4, 4)
    vehicle[0, 0, 1, 1] = 1.0
    target[0, :, 1, 1] = 1.0
    predicted = torch.full((1, 2, 4, 4), 9.0)  # wrong everywhere but where a vehicle is
    predicted[0, :, 1, 1] = 1.0
    assert velocity_loss(predicted, target, vehicle).item() == 0.0
    logits = torch.full((4, 4), -1.0)
    logits[1, 1] = logits[2, 2] = 1.0
    assert mask_iou(logits, vehicle[0, 0]).item() == pytest.approx(0.5)


def run_file(tmp_path: Path, data: Path, teacher: Path, **overrides) -> StudentTrainConfig:
    values = {
        'data': [str(data)],
        'teacher_weights': str(teacher),
        'out_dir': str(tmp_path / 'run'),
        'steps': 4,
        'batch_size': 2,
        'warmup_steps': 1,
        'checkpoint_every': 2,
        'log_every': 1,
        **overrides,
    }
    return StudentTrainConfig.from_dict(values, tmp_path)


def test_student_training_fits_and_a_stopped_run_resumes_exactly(
    camera_data, teacher_file, tmp_path
):
    straight = train_student(run_file(tmp_path / 'a', camera_data, teacher_file), progress=False)
    partial = run_file(tmp_path / 'b', camera_data, teacher_file)
    train_student(partial, progress=False, stop_after=2)
    assert latest_checkpoint(Path(partial.out_dir) / 'checkpoints').name.endswith(
        '0000002.safetensors'
    )
    resumed = train_student(partial, progress=False)
    assert resumed.sha256 == straight.sha256 and resumed.sha256
    rows = [
        json.loads(r) for r in (Path(partial.out_dir) / 'metrics.jsonl').read_text().splitlines()
    ]
    assert [row['step'] for row in rows] == [1, 2, 3, 4]
    assert {'loss_bev', 'loss_trajectory', 'loss_expert', 'iou_vehicle'} <= set(rows[-1])
    assert (Path(partial.out_dir) / 'training.png').is_file()
    student = load_weights(straight.weights, straight.sha256)
    assert isinstance(student, NeuralMapStudent) and student.config == student_v2()


def test_a_student_run_with_a_bad_file_or_another_teacher_is_refused(camera_data, tmp_path):
    with pytest.raises(ValueError, match='unknown key'):
        StudentTrainConfig.from_dict(
            {'data': ['x'], 'teacher_weights': 't', 'out_dir': 'o', 'stepz': 3}, tmp_path
        )
    with pytest.raises(ValueError, match='map_prior_share'):
        StudentTrainConfig.from_dict(
            {'data': ['x'], 'teacher_weights': 't', 'out_dir': 'o', 'map_prior_share': 2},
            tmp_path,
        )
    for weights, reason in (
        ({'vehicles': 10.0}, "'vehicles' is not a map class"),
        ({'vehicle': 0.5}, r'map_positive_weight.vehicle must be in \[1, 100\]'),
    ):
        with pytest.raises(ValueError, match=reason):
            StudentTrainConfig.from_dict(
                {
                    'data': ['x'],
                    'teacher_weights': 't',
                    'out_dir': 'o',
                    'map_positive_weight': weights,
                },
                tmp_path,
            )
    other = tmp_path / 'other.safetensors'
    save_teacher(PrivilegedTeacher(TeacherConfig(widths=(16, 32, 64))), other)
    with pytest.raises(ArtifactError, match='another configuration'):
        train_student(run_file(tmp_path, camera_data, other), progress=False)


class DrivableEverywhere(NeuralMapStudent):
    """A student whose map says: all road, nothing else (its IoU is known from the truth)."""

    def neural_map(self, images, *args):
        """Return certain road everywhere, no other class, no velocity, empty features."""
        rows, cols = self.config.bev_size
        logits = torch.full((len(images), len(self.config.bev_classes), rows, cols), -10.0)
        logits[:, self.config.bev_classes.index('drivable')] = 10.0
        bev = torch.zeros(len(images), self.config.bev_channels, rows, cols)
        return NeuralMap(logits, torch.zeros(len(images), 2, rows, cols), bev, None)


def test_map_iou_is_measured_per_class_and_distance_band(camera_data, rig):
    samples = samples_of(camera_data, rig)
    model = DrivableEverywhere(student_v2()).eval()
    iou = neural_map_iou(model, samples, rig, map_prior=False, progress=False)
    rasters = samples.rasters(np.arange(len(samples)), PRIVILEGED_CHANNELS)
    bands = band_masks(model)
    for band, (low, high) in zip(bands, DISTANCE_BANDS_M, strict=True):
        road = rasters[:, CHANNEL['drivable']][:, band].sum()
        expected = road / (band.sum() * len(samples))  # predicted everywhere: union = band
        assert iou['drivable'][f'{low:g}-{high:g} m'] == pytest.approx(expected, abs=1e-4)
        assert iou['vehicle'][f'{low:g}-{high:g} m'] == 0.0
        assert iou['route_lanes'][f'{low:g}-{high:g} m'] == 0.0
    table = iou_table({'off': iou})
    assert '| drivable | off |' in table and '0-30 m' in table


def test_map_iou_refuses_a_v1_model(tmp_path, camera_data):
    from vla_model.network import VlaNet

    save_weights(VlaNet(student()).eval(), tmp_path / 'v1.safetensors')
    result = run_vla('student', 'map-iou', str(tmp_path / 'v1.safetensors'), str(camera_data))
    assert result.returncode == 1
    assert 'is not a v2 student' in result.stderr
