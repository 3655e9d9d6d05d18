"""The privileged teacher: its raster, its data (own and counterfactual labels), training."""

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors import safe_open
from safetensors.torch import save_file

from repo_paths import run_vla
from vla_model.artifacts import ArtifactError, load_teacher, save_teacher
from vla_model.checkpoint import latest_checkpoint
from vla_model.config import PRIVILEGED_CHANNELS, VELOCITY_SCALE_MPS
from vla_model.instruction_features import speed_slot, spoken_speed_mps
from vla_model.privileged_dataset import (
    SOURCES,
    DatasetError,
    DatasetSettings,
    decode_rasters,
    encode_rasters,
    load_samples,
    prepare_dataset,
)
from vla_model.teacher_network import PrivilegedTeacher, TeacherConfig
from vla_model.teacher_training import TeacherTrainConfig, noisy_embeddings, train_teacher
from vla_sim.expert_lookahead import expert_rollout
from vla_sim.instructions import ALL_PARAPHRASES, Intent, Split
from vla_sim.scenarios import get_scenario
from vla_sim.simulation import SimConfig, SimulationCore
from vla_sim.teacher_data import (
    EpisodeTask,
    RecordSettings,
    instruction_for,
    record_dataset,
    record_episode,
    teacher_raster,
)
from vla_sim.teacher_driver import TeacherDriver

CHANNEL = {name: index for index, name in enumerate(PRIVILEGED_CHANNELS)}
SMALL = RecordSettings(keep_every=10, counterfactual_every=50, counterfactuals=2)


def core_of(scenario: str, rig, seed: int = 0, **kwargs) -> SimulationCore:
    return SimulationCore(get_scenario(scenario), seed, rig, SimConfig(render=False), **kwargs)


@pytest.mark.parametrize(
    ('text', 'mps'),
    [
        ('Set your speed to 60 km/h.', 60 / 3.6),
        ('make it 55', 55 / 3.6),  # a bare number is km/h
        ('Please drive 70 kilometres an hour.', 70 / 3.6),
        ('could you hold 45 kph for me', 45 / 3.6),
        ('go 40 mph', 40 * 0.44704),
        ('cruise at 12.5 m/s', 12.5),
        ('Keep your lane.', None),
        ('Take the next exit.', None),
        ('go 900', None),  # not a speed a car is asked to hold
    ],
)
def test_a_spoken_speed_is_read_in_any_wording(text, mps):
    found = spoken_speed_mps(text)
    assert found == pytest.approx(mps) if mps is not None else found is None
    slot = speed_slot(text)
    assert slot[0] == (mps is not None)


def test_every_set_speed_paraphrase_carries_its_speed():
    for paraphrase in ALL_PARAPHRASES:
        kmh = 65 if paraphrase.intent is Intent.SET_SPEED else None
        found = spoken_speed_mps(paraphrase.render(kmh))
        assert found == (pytest.approx(65 / 3.6) if kmh else None), paraphrase.template


def test_the_raster_draws_vehicles_with_their_velocity_where_they_are(rig):
    core = core_of('highway', rig)
    frame = core.frame
    raster = teacher_raster(core, frame)
    assert raster.shape == (len(PRIVILEGED_CHANNELS), *core.bev_grid.shape)
    ego = frame.scene.ego
    grid = core.bev_grid
    checked = 0
    for actor in frame.scene.actors:
        c, s = np.cos(ego.yaw), np.sin(ego.yaw)
        dx, dy = actor.pose.x - ego.x, actor.pose.y - ego.y
        x, y = c * dx + s * dy, -s * dx + c * dy
        row = int((x - grid.x_range[0]) / grid.cell_m)
        col = int((y - grid.y_range[0]) / grid.cell_m)
        if not (2 <= row < grid.shape[0] - 2 and 2 <= col < grid.shape[1] - 2):
            continue
        assert raster[CHANNEL['vehicle'], row, col] == 1.0
        relative = actor.pose.yaw - ego.yaw
        expected = actor.speed_mps * np.array([np.cos(relative), np.sin(relative)])
        found = raster[[CHANNEL['vehicle_vx'], CHANNEL['vehicle_vy']], row, col]
        np.testing.assert_allclose(found * VELOCITY_SCALE_MPS, expected, atol=1e-3)
        checked += 1
    assert checked >= 1
    # No vehicle, no velocity; the ego's own cell is road, not a vehicle.
    vehicle = raster[CHANNEL['vehicle']] > 0
    assert not raster[CHANNEL['vehicle_vx']][~vehicle].any()
    ego_row, ego_col = int(-grid.x_range[0] / grid.cell_m), int(-grid.y_range[0] / grid.cell_m)
    assert raster[CHANNEL['drivable'], ego_row, ego_col] == 1.0


def test_the_route_is_drawn_where_the_map_has_one_and_does_not_follow_the_instruction(rig):
    core = core_of('roundabout', rig)
    roundabout = teacher_raster(core, core.frame)
    route, grid = roundabout[CHANNEL['route_lanes']], core.bev_grid
    # Lane surfaces, not centre-lines: the ego stands on its route, which is lanes wide.
    ego_row, ego_col = int(-grid.x_range[0] / grid.cell_m), int(-grid.y_range[0] / grid.cell_m)
    assert route[ego_row, ego_col] == 1.0
    assert (route.sum(axis=1) >= 3).sum() > 10
    assert route.sum() <= roundabout[CHANNEL['drivable']].sum()
    highway = teacher_raster(*(lambda c: (c, c.frame))(core_of('highway', rig)))
    assert highway[CHANNEL['route_lanes']].sum() == 0
    rasters = []
    for intent in (Intent.TAKE_EXIT, Intent.KEEP_LANE):
        core = core_of('exit', rig, instruction=instruction_for(intent, None, 0))
        while core.frame.ego.pose.x < 480.0:  # the ramp leaves at x = 500 m
            core.step(core.expert_decision().command)
        rasters.append(teacher_raster(core, core.frame))
    # The exit is a fact of the map, seen under either instruction; the route is not the intent.
    for raster in rasters:
        assert raster[CHANNEL['route_lanes']].sum() == 0
        assert raster[CHANNEL['exit_lane']].sum() > 20


def test_rasters_survive_the_packed_storage():
    rng = np.random.default_rng(0)
    rasters = (rng.random((3, len(PRIVILEGED_CHANNELS), 64, 48)) > 0.7).astype(np.float32)
    for name in ('vehicle_vx', 'vehicle_vy'):
        rasters[:, CHANNEL[name]] = rng.uniform(-3, 3, (3, 64, 48)).astype(np.float32)
    packed = encode_rasters(rasters, PRIVILEGED_CHANNELS)
    assert sum(a.nbytes for a in packed.values()) < rasters.nbytes / 10
    restored = decode_rasters(packed['masks'], packed['velocity'], PRIVILEGED_CHANNELS)
    np.testing.assert_allclose(restored, rasters, atol=0.025 / 2 + 1e-6)  # half a 0.25 m/s step


def test_the_same_state_under_other_words_has_other_answers(rig):
    core = core_of('highway', rig, instruction=instruction_for(Intent.KEEP_LANE, None, 0))
    for _ in range(10):
        core.step(core.expert_decision().command)
    plan = TeacherConfig().plan
    before = core.world.ego_state()
    labels = {
        intent: expert_rollout(core, plan, instruction_for(intent, speed, 1))[0]
        for intent, speed in (
            (Intent.KEEP_LANE, None),
            (Intent.CHANGE_LANE_LEFT, None),
            (Intent.CHANGE_LANE_RIGHT, None),
            (Intent.SET_SPEED, 30 / 3.6),
        )
    }
    assert core.world.ego_state() == before  # the episode is untouched
    assert abs(labels[Intent.KEEP_LANE][-1, 1]) < 0.5
    assert labels[Intent.CHANGE_LANE_LEFT][-1, 1] > 3.0  # a lane to the left (+y)
    assert labels[Intent.CHANGE_LANE_RIGHT][-1, 1] < -3.0
    assert labels[Intent.SET_SPEED][-1, 0] < labels[Intent.KEEP_LANE][-1, 0] - 10.0
    # A lane change already made is not made again.
    done = expert_rollout(core, plan, instruction_for(Intent.CHANGE_LANE_LEFT, None, 1), True)
    assert abs(done[0][-1, 1]) < 0.5


def test_a_fresh_expert_keeps_the_lane_another_driver_left_the_car_in(rig):
    """When the teacher changed lanes, the ego's target lane is still the one it started in."""
    core = core_of('highway', rig, instruction=instruction_for(Intent.KEEP_LANE, None, 0))
    for _ in range(10):
        core.step(core.expert_decision().command)
    start, end, lane = core.world.ego.lane_index
    core.world.ego.target_lane_index = (start, end, lane + 1)  # stale: set before the change
    label, _ = expert_rollout(
        core, TeacherConfig().plan, instruction_for(Intent.KEEP_LANE, None, 1)
    )
    assert abs(label[-1, 1]) < 0.5  # not a lane over, where the stale target lane is
    assert core.world.ego.target_lane_index == (start, end, lane + 1)  # the episode untouched


def test_a_fresh_expert_in_a_roundabout_leaves_by_the_route_s_exit(rig):
    """Inside the ring, the instructed expert's label is the episode expert's, exit included.

    A fresh expert given the whole route from the entry no longer finds its lane on it, and
    highway-env then picks the ring's next lane at random: labels that left by another exit.
    """
    core = core_of('roundabout', rig, instruction=instruction_for(Intent.KEEP_LANE, None, 0))
    plan = TeacherConfig().plan
    entry = core.world.navigation_route[0][:2]
    compared = 0
    for step in range(200):
        if step % 5 == 0 and core.world.ego.lane_index[:2] != entry:
            own, _ = expert_rollout(core, plan)
            fresh, _ = expert_rollout(core, plan, core.instruction)
            assert np.abs(own[:, :2] - fresh[:, :2]).max() < 1.0, core.world.ego.lane_index
            compared += 1
        core.step(core.expert_decision().command)
    assert compared >= 10  # the ring and its exit were reached


@pytest.fixture(scope='module')
def tiny_dataset(tmp_path_factory) -> Path:
    """Two short recorded episodes: expert labels and counterfactuals."""
    out_dir = tmp_path_factory.mktemp('teacher-data')
    counts = record_dataset(out_dir, 2, 100_000, workers=1, settings=SMALL, progress=False)
    assert counts['recorded'] == 2
    return out_dir


def test_a_recorded_episode_keeps_expert_and_counterfactual_labels(tiny_dataset, rig):
    samples = load_samples([tiny_dataset], DatasetSettings.of(TeacherConfig()))
    sources = {SOURCES[i] for i in samples.source.tolist()}
    assert sources == {'expert', 'counterfactual'}
    assert len(samples) > 20
    assert samples.ego_state.shape[1] == 4
    assert set(samples.intents) <= {intent.value for intent in Intent}
    # Training wording only: no validation or test paraphrase reaches the data.
    held_out = {p.template for p in ALL_PARAPHRASES if p.split is not Split.TRAIN}
    assert not any(text in held_out for text in samples.texts)
    # The expert's own label is where it then drove: forward, at the plan's steps.
    expert = samples.source == SOURCES.index('expert')
    assert np.all(np.diff(samples.trajectory[expert][:, :, 0], axis=1) >= -1e-3)


def test_recording_resumes_and_refuses_another_grid(tiny_dataset, tmp_path):
    before = sorted(p.stat().st_mtime_ns for p in tiny_dataset.glob('*.npz'))
    again = record_dataset(tiny_dataset, 2, 100_000, workers=1, settings=SMALL, progress=False)
    assert again['recorded'] == 0
    assert sorted(p.stat().st_mtime_ns for p in tiny_dataset.glob('*.npz')) == before
    other = replace(DatasetSettings.of(TeacherConfig()), bev_cell_m=0.5)
    with pytest.raises(DatasetError, match='bev_cell_m'):
        prepare_dataset(tiny_dataset, other)
    with pytest.raises(DatasetError, match='not a teacher data set'):
        load_samples([tmp_path], DatasetSettings.of(TeacherConfig()))


def run_file(tmp_path: Path, data: Path, **overrides) -> TeacherTrainConfig:
    values = {
        'data': [str(data)],
        'out_dir': str(tmp_path / 'run'),
        'steps': 4,
        'batch_size': 8,
        'warmup_steps': 1,
        'checkpoint_every': 2,
        'log_every': 1,
        **overrides,
    }
    return TeacherTrainConfig.from_dict(values, tmp_path)


def test_training_fits_and_a_stopped_run_resumes_exactly(tiny_dataset, tmp_path):
    straight = train_teacher(run_file(tmp_path / 'a', tiny_dataset), progress=False)
    partial = run_file(tmp_path / 'b', tiny_dataset)
    train_teacher(partial, progress=False, stop_after=2)
    assert latest_checkpoint(Path(partial.out_dir) / 'checkpoints').name.endswith(
        '0000002.safetensors'
    )
    resumed = train_teacher(partial, progress=False)
    assert resumed.sha256 == straight.sha256 and resumed.sha256
    rows = (Path(partial.out_dir) / 'metrics.jsonl').read_text().splitlines()
    assert [json.loads(row)['step'] for row in rows] == [1, 2, 3, 4]
    assert (Path(partial.out_dir) / 'training.png').is_file()
    loaded, _ = load_teacher(straight.weights, straight.sha256)
    assert loaded.config == TeacherConfig()


# Imports of these fail in the child process, as on a GPU machine that has PyTorch and no ROS.
WITHOUT_ROS = """
import sys
class NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('rclpy', 'rosbag2_py', 'vla_msgs'):
            raise ModuleNotFoundError(f'No module named {name!r} (not installed here)')
sys.meta_path.insert(0, NotInstalled())
from vla_model.teacher_training import main
sys.exit(main(sys.argv[1:]))
"""


def test_the_teacher_trains_where_no_ros_package_is_installed(tiny_dataset, tmp_path):
    straight = train_teacher(run_file(tmp_path / 'a', tiny_dataset), progress=False)
    run = tmp_path / 'run.yaml'
    values = {'data': [str(tiny_dataset)], 'out_dir': str(tmp_path / 'no_ros'), 'steps': 4}
    values |= {'batch_size': 8, 'warmup_steps': 1, 'checkpoint_every': 2, 'log_every': 1}
    run.write_text(yaml.safe_dump(values))
    result = subprocess.run(
        [sys.executable, '-c', WITHOUT_ROS, str(run), '--no-progress'],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith(f'(sha256 {straight.sha256})')


def _rewrite_checkpoint_config(path: Path, edit) -> None:
    """Rewrite a checkpoint's stored configuration with `edit(dict)`, as another version would."""
    with safe_open(str(path), framework='pt') as handle:
        metadata = handle.metadata()
        tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
    config = json.loads(metadata['config'])
    edit(config)
    save_file(tensors, str(path), metadata={**metadata, 'config': json.dumps(config)})


def test_a_checkpoint_from_before_a_defaulted_field_resumes_and_another_teacher_s_is_refused(
    tiny_dataset, tmp_path
):
    """A run stopped before a configuration field (with its default) was added still resumes."""
    straight = train_teacher(run_file(tmp_path / 'a', tiny_dataset), progress=False)
    partial = run_file(tmp_path / 'b', tiny_dataset)
    train_teacher(partial, progress=False, stop_after=2)
    checkpoint = latest_checkpoint(Path(partial.out_dir) / 'checkpoints')
    _rewrite_checkpoint_config(checkpoint, lambda config: config['plan'].pop('lut_samples'))
    assert train_teacher(partial, progress=False).sha256 == straight.sha256

    other = run_file(tmp_path / 'c', tiny_dataset)
    train_teacher(other, progress=False, stop_after=2)
    checkpoint = latest_checkpoint(Path(other.out_dir) / 'checkpoints')
    _rewrite_checkpoint_config(checkpoint, lambda config: config.update(widths=[16, 32, 64]))
    with pytest.raises(ValueError, match=f'{checkpoint.name} is of another teacher configuration'):
        train_teacher(other, progress=False)


def test_a_run_file_with_unknown_keys_or_another_teacher_is_refused(tiny_dataset, tmp_path):
    with pytest.raises(ValueError, match='unknown key'):
        TeacherTrainConfig.from_dict({'data': ['x'], 'out_dir': 'o', 'stepz': 3}, tmp_path)
    other = PrivilegedTeacher(TeacherConfig(widths=(16, 32, 64)))
    save_teacher(other, tmp_path / 'other.safetensors')
    config = run_file(tmp_path, tiny_dataset, init_weights=str(tmp_path / 'other.safetensors'))
    with pytest.raises(ArtifactError, match='another configuration'):
        train_teacher(config, progress=False)


def test_the_recipes_teacher_run_files_chain_their_rounds():
    """Each DAgger round starts from the previous round's weights, on all data so far."""
    config_dir = Path(__file__).resolve().parents[1] / 'config'
    runs = [
        TeacherTrainConfig.from_file(config_dir / name)
        for name in (
            'train_teacher.yaml',
            'train_teacher_dagger.yaml',
            'train_teacher_dagger2.yaml',
        )
    ]
    for before, after in zip(runs, runs[1:], strict=False):
        assert Path(after.init_weights).parent == Path(before.out_dir)
        assert set(before.data) < set(after.data)
        assert after.ground_instructions


def test_a_grounded_round_starts_from_an_ungrounded_teacher_and_keeps_its_texts(
    tiny_dataset, tmp_path
):
    first = train_teacher(run_file(tmp_path / 'a', tiny_dataset), progress=False)
    config = run_file(
        tmp_path / 'b', tiny_dataset, init_weights=str(first.weights), ground_instructions=True
    )
    grounded = train_teacher(config, progress=False)
    loaded, _ = load_teacher(grounded.weights, grounded.sha256)
    samples = load_samples([tiny_dataset], DatasetSettings.of(TeacherConfig()))
    assert loaded.config.grounding_texts == len(samples.texts)
    assert loaded.config.grounding_intents == len(set(samples.intents))
    assert loaded.grounding.text_intents.sum() == len(samples.texts)  # one intent per text
    centroids = loaded.grounding.intent_centroids
    torch.testing.assert_close(centroids.norm(dim=1), torch.ones(len(centroids)))
    # A grounded teacher built from other texts starts a grounded round too, grounded anew.
    other = tmp_path / 'other.safetensors'
    save_teacher(PrivilegedTeacher(TeacherConfig(grounding_texts=3, grounding_intents=2)), other)
    again = train_teacher(
        run_file(tmp_path / 'c', tiny_dataset, init_weights=str(other), ground_instructions=True),
        progress=False,
    )
    assert load_teacher(again.weights)[0].config == loaded.config
    # An ungrounded round cannot start from a grounded teacher: its planner reads centroids.
    with pytest.raises(ArtifactError, match='another configuration'):
        train_teacher(run_file(tmp_path / 'd', tiny_dataset, init_weights=str(other)))


def test_grounding_names_the_intent_of_wording_it_was_not_built_from():
    """Built from the training paraphrases, it reads the held-out ones: 15 of 16 measured."""
    from vla_model.instruction_encoder import InstructionEncoder
    from vla_model.instruction_grounding import InstructionGrounding
    from vla_sim.instructions import SPEED_SLOT

    encoder = InstructionEncoder()
    train = [p for p in ALL_PARAPHRASES if p.split is Split.TRAIN]
    test = [p for p in ALL_PARAPHRASES if p.split is Split.TEST]
    temperature = TeacherConfig().grounding_temperature
    width = TeacherConfig().plan.instruction_dim
    grounding = InstructionGrounding(len(train), len(Intent), width, temperature)

    def embed(paraphrases):
        return np.stack(
            [encoder.encode(p.template.replace(SPEED_SLOT, '60')) for p in paraphrases]
        )

    names = grounding.fit(embed(train), [p.intent.value for p in train])
    scores = grounding.scores(torch.from_numpy(embed(test)).float())
    weights = torch.softmax(scores / temperature, 1)
    named = [names[i] for i in weights.argmax(1).tolist()]
    assert sum(n == p.intent.value for n, p in zip(named, test, strict=True)) >= 14
    # Each input becomes a mix of centroids: a training text lands on its own intent's.
    mixed = grounding(torch.from_numpy(embed(train[:1])).float())
    own = grounding.intent_centroids[names.index(train[0].intent.value)]
    assert torch.nn.functional.cosine_similarity(mixed[0], own, dim=0) > 0.99


def test_the_teacher_drives_through_the_monitor_and_controller(rig):
    torch.manual_seed(0)
    driver = TeacherDriver(model=PrivilegedTeacher(TeacherConfig()))
    core = core_of('highway', rig)
    driver.reset(core)
    states = set()
    for _ in range(15):
        output = driver.drive(core, core.frame)
        states.add(output.safety_state)
        core.step(output.command)
    # An untrained teacher's plans reach the monitor and are judged by its rules.
    assert states and all(states)
    assert driver.plan_ms > 0.0


def test_on_policy_recording_labels_the_teachers_states(tmp_path, rig):
    torch.manual_seed(0)
    driver = TeacherDriver(model=PrivilegedTeacher(TeacherConfig()))
    prepare_dataset(tmp_path, DatasetSettings.of(TeacherConfig()))
    task = EpisodeTask('highway', 7, Intent.KEEP_LANE, None)
    written = record_episode(task, tmp_path, TeacherConfig(), SMALL, driver)
    samples = load_samples([tmp_path], DatasetSettings.of(TeacherConfig()))
    assert len(samples) == written > 0
    assert SOURCES.index('on_policy') in samples.source.tolist()
    assert SOURCES.index('expert') not in samples.source.tolist()


def test_sim_eval_drives_the_teacher_and_refuses_a_missing_one(tmp_path):
    weights = tmp_path / 'teacher.safetensors'
    torch.manual_seed(0)
    save_teacher(PrivilegedTeacher(TeacherConfig()), weights)
    summary = tmp_path / 'eval.json'
    result = run_vla(
        'sim', 'eval', '--driver', 'teacher', '--weights', str(weights),
        '--scenarios', 'highway', '--episodes', '1', '--json', str(summary),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    written = json.loads(summary.read_text())
    assert written['driver'] == 'teacher' and written['episodes'][0]['driver'] == 'teacher'
    missing = run_vla('sim', 'eval', '--driver', 'teacher', '--weights', str(tmp_path / 'none'))
    assert missing.returncode == 1
    assert missing.stderr.strip().endswith('none does not exist')
    assert run_vla('sim', 'eval', '--driver', 'teacher').returncode == 1


def test_instruction_noise_moves_embeddings_near_not_onto_the_training_wording():
    rng = np.random.default_rng(0)
    embedding = rng.standard_normal((64, 384)).astype(np.float32)
    embedding /= np.linalg.norm(embedding, axis=1, keepdims=True)
    slot = np.tile(np.array([[1.0, 0.5]], np.float32), (64, 1))
    rows = torch.from_numpy(np.concatenate([embedding, slot], axis=1))
    moved = noisy_embeddings(rows, 384, 0.75, seed=3)
    assert torch.equal(moved, noisy_embeddings(rows, 384, 0.75, seed=3))  # resumable
    assert not torch.equal(moved, noisy_embeddings(rows, 384, 0.75, seed=4))
    np.testing.assert_allclose(moved[:, :384].norm(dim=1), 1.0, atol=1e-5)
    cosine = (moved[:, :384] * rows[:, :384]).sum(dim=1)
    assert cosine.min() > 0.79 and cosine.max() < 1.0  # 1 / sqrt(1 + 0.75^2) = 0.8
    assert torch.equal(moved[:, 384:], rows[:, 384:])  # the speed slot is not noise


AFTER_TRAINING = """
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from vla_sim.teacher_data import record_episodes


@dataclass(frozen=True)
class Task:
    shard_name: str


def record(task, out_dir, config, settings, driver):
    x = torch.randn(256, 256)  # the workers' first torch operation
    (out_dir / task.shard_name).write_text(str(float((x @ x).sum())))
    return 1


if __name__ == '__main__':
    torch.set_num_threads(2)
    a = torch.randn(512, 512)
    for _ in range(20):  # the training before: torch's thread pool is running
        a @ a
    tasks = [Task(f'{i}.txt') for i in range(4)]
    print(record_episodes(record, Path(sys.argv[1]), tasks, (None, None), 2, False, 'test'))
"""


def test_recording_workers_start_after_the_process_has_trained(tmp_path):
    # `vla distill` trains, then records the on-policy round on two workers; forked from a
    # process whose torch thread pool had run, they hung at their first torch operation.
    script = tmp_path / 'after_training.py'
    script.write_text(AFTER_TRAINING)
    result = subprocess.run(
        [sys.executable, str(script), str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "'recorded': 4, 'samples': 4" in result.stdout
    assert len(list(tmp_path.glob('*.txt'))) == 4
