"""Training data from a recorded bag is what the running stack sees, labelled from the bag.

One simulator bag is recorded per module. Its cached frames are compared with the node path
(sensor_sync_node's core and message, vla_inference_node's conversion) fed with rclpy messages,
its labels with the bag's odometry, BEV grids and rationales; the cache is checked to be reused,
invalidated, storage-independent, and never left half-written.
"""

import dataclasses
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from rclpy.serialization import deserialize_message
from rosbags.rosbag2 import Reader, StoragePlugin, Writer

import vla_model.bag_cache as bag_cache
from message_trees import message_class
from vla_model.bag_cache import BagReadError, DatasetSettings, load_bag
from vla_model.config import student, teacher
from vla_model.driving_dataset import DrivingDataset
from vla_model.driving_labels import in_frame_of, occupancy_mask, rationale_index
from vla_model.model_inputs import relative_motion
from vla_perception import sensor_sync_node
from vla_perception.health import Health
from vla_perception.odometry import OdometrySample
from vla_perception.offline_sync import OfflineSync
from vla_perception.rig import RigConfig
from vla_perception.sensor_sync import SensorSyncCore
from vla_perception.sensor_sync_node import sensor_frame_message, sync_config
from vla_planning.vla_inference_node import planning_input
from vla_ros.bag_types import make_typestore
from vla_ros.install_paths import vla_ros_file
from vla_ros.parameters import parameter_defaults
from vla_ros.topics import ODOMETRY_TOPIC, RATIONALE_TOPIC, bev_topic

SCENARIO, SEED, STEPS = 'highway', 3, 45
BAG = f'{SCENARIO}_seed{SEED}'
NS_PER_S = 1_000_000_000
FRAME_NS = NS_PER_S // 10  # the simulator steps at 10 Hz


def encode(text: str) -> np.ndarray:
    return np.full(384, len(text), np.float32)


@pytest.fixture(scope='module')
def model():
    return student()


@pytest.fixture(scope='module')
def surround_rig() -> RigConfig:
    return RigConfig.from_file(vla_ros_file('config/rig_surround.yaml'))


@pytest.fixture(scope='module')
def settings(model, surround_rig) -> DatasetSettings:
    return DatasetSettings.defaults(model, surround_rig)


@pytest.fixture(scope='module')
def bag(highway_bag) -> Path:
    assert highway_bag.name == BAG
    return highway_bag


@pytest.fixture(scope='module')
def cache_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp('cache')


@pytest.fixture(scope='module')
def cache(bag, cache_root, settings):
    return load_bag(bag, cache_root, settings, encode, progress=False)


def raw_messages(bag: Path, topics=None):
    """(topic, msgtype, log time ns, raw CDR) in log order."""
    with Reader(bag) as reader:
        connections = [c for c in reader.connections if topics is None or c.topic in topics]
        return [
            (connection.topic, connection.msgtype, log_time_ns, bytes(raw))
            for connection, log_time_ns, raw in reader.messages(connections=connections)
        ]


def rclpy_messages(bag: Path, topics=None):
    """(topic, rclpy message, log time ns) in log order."""
    for topic, msgtype, log_time_ns, raw in raw_messages(bag, topics):
        yield topic, deserialize_message(raw, message_class(msgtype)), log_time_ns


@pytest.fixture(scope='module')
def node_params() -> dict:
    return parameter_defaults(sensor_sync_node.PARAMETERS)


@pytest.fixture(scope='module')
def node_path(bag, surround_rig, node_params):
    """Return what the running nodes make of the bag: (odometry health, FrameInput)."""
    core = SensorSyncCore(surround_rig, sync_config(surround_rig, node_params))
    offline = OfflineSync(core, node_params['odometry_topic'])
    frames, previous = [], None
    try:
        messages = rclpy_messages(bag, offline.topics)
        for topic, message, log_time_ns in messages:
            for frame in offline.feed(topic, message, log_time_ns):
                frames.append(_convert(frame, previous))
                previous = (frames[-1][1].stamp_ns, frames[-1][1].ego_state[0])
        for frame in offline.finish():
            frames.append(_convert(frame, previous))
            previous = (frames[-1][1].stamp_ns, frames[-1][1].ego_state[0])
    finally:
        core.close()
    assert offline.rejected == type(offline.rejected)()
    return frames


def _convert(frame, previous):
    message = sensor_frame_message(frame)
    return Health(message.odometry_status.health), planning_input(message, student(), previous)


def bag_odometry(bag: Path) -> dict[int, OdometrySample]:
    return {
        stamp: OdometrySample.from_message(message)
        for _, message, stamp in rclpy_messages(bag, {ODOMETRY_TOPIC})
    }


def test_dataset_settings_are_the_sensor_sync_nodes_defaults(settings, surround_rig, node_params):
    node = sync_config(surround_rig, node_params)
    assert (node.output_height, node.output_width) == (
        settings.model.image_height,
        settings.model.image_width,
    )
    only_speed = ('preprocess_threads', 'decode_on_arrival')  # how, not what, it computes
    assert (
        dataclasses.replace(settings.sync, **{name: getattr(node, name) for name in only_speed})
        == node
    )
    assert settings.odometry_topic == node_params['odometry_topic']


def test_cached_frames_are_the_node_paths_frames(cache, node_path):
    arrays = cache.arrays
    assert cache.frames == len(node_path) == STEPS + 1
    np.testing.assert_array_equal(arrays['stamp_ns'], [f.stamp_ns for _, f in node_path])
    np.testing.assert_array_equal(arrays['epoch'], [f.epoch for _, f in node_path])
    for index, (_, frame) in enumerate(node_path):
        assert np.array_equal(cache.images[index], frame.images), index
        np.testing.assert_array_equal(arrays['camera_valid'][index], frame.camera_valid)
        np.testing.assert_allclose(arrays['pose'][index], frame.pose, rtol=0, atol=1e-9)
        np.testing.assert_allclose(arrays['ego_state'][index], frame.ego_state, atol=1e-5)
        for camera, geometry in enumerate(frame.cameras):
            if frame.camera_valid[camera]:
                np.testing.assert_allclose(arrays['camera_k'][camera], geometry.k)
            np.testing.assert_allclose(arrays['camera_rotation'][camera], geometry.rotation)
            np.testing.assert_allclose(arrays['camera_translation'][camera], geometry.translation)
    assert cache.images.shape == (STEPS + 1, 6, 256, 448, 3)
    assert cache.images.any()  # rendered, not blank


def test_every_simulated_frame_is_complete_and_labelled(cache, node_path, bag, model):
    arrays, stamps = cache.arrays, cache.arrays['stamp_ns']
    assert arrays['camera_valid'].all()
    assert all(health == Health.OK for health, _ in node_path)
    odometry = bag_odometry(bag)
    assert sorted(odometry) == stamps.tolist()  # one odometry message per frame, same stamp
    previous = None
    for index, stamp in enumerate(stamps.tolist()):
        sample = odometry[stamp]
        pose = (sample.position[0], sample.position[1], sample.yaw)
        np.testing.assert_allclose(arrays['pose'][index], pose, rtol=0, atol=1e-9)
        speed, yaw_rate = sample.linear_velocity[0], sample.angular_velocity[2]
        acceleration = 0.0 if previous is None else (speed - previous) * NS_PER_S / FRAME_NS
        np.testing.assert_allclose(
            arrays['ego_state'][index], (speed, yaw_rate, acceleration), atol=1e-4
        )
        previous = speed
    assert arrays['bev_valid'].all()
    assert ((arrays['rationale'] >= 0) & (arrays['rationale'] < len(model.rationales))).all()

    horizon_ns = model.horizon_steps * round(model.step_s * NS_PER_S)
    expected_valid = stamps + horizon_ns <= stamps[-1]
    assert expected_valid.any() and not expected_valid.all()
    np.testing.assert_array_equal(arrays['trajectory_valid'], expected_valid)
    assert not arrays['trajectory'][~expected_valid].any()  # unlabelled: zeros


def test_bev_and_rationale_labels_are_the_bags_messages(cache, bag, model):
    stamps = cache.arrays['stamp_ns'].tolist()
    topics = {bev_topic(name): index for index, name in enumerate(model.bev_classes)}
    seen = np.zeros((len(stamps), len(topics)), bool)
    rationales = {}
    for topic, message, log_time_ns in rclpy_messages(bag, {*topics, RATIONALE_TOPIC}):
        if topic == RATIONALE_TOPIC:
            rationales[log_time_ns] = rationale_index(message.data, model)
            continue
        frame = stamps.index(log_time_ns)
        channel = topics[topic]
        np.testing.assert_array_equal(
            cache.arrays['bev'][frame, channel], occupancy_mask(message, model)
        )
        seen[frame, channel] = True
    assert seen.all()
    # The ego drives straight along odom x, so in base_link the road and its lane markings are
    # bands along x (rows): every column is all or nothing, and the ego's own cell is road.
    assert not cache.arrays['pose'][:, 2].any()
    road, markings = cache.arrays['bev'][:, 0], cache.arrays['bev'][:, 1]
    for mask in (road, markings):
        assert mask.any(axis=1).sum() > 0
        np.testing.assert_array_equal(mask.all(axis=1), mask.any(axis=1))
    ego_row = round(-model.bev_x_range[0] / model.bev_cell_m)
    ego_col = round(-model.bev_y_range[0] / model.bev_cell_m)
    assert road[:, ego_row, ego_col].all()
    np.testing.assert_array_equal(cache.arrays['rationale'], [rationales[s] for s in stamps])


def test_trajectory_labels_are_the_future_cached_poses(cache, model):
    stamps, poses = cache.arrays['stamp_ns'], cache.arrays['pose']
    assert (np.diff(stamps) == FRAME_NS).all()
    per_step = round(model.step_s * NS_PER_S) // FRAME_NS
    assert per_step == 5
    labelled = np.flatnonzero(cache.arrays['trajectory_valid'])
    assert len(labelled) > 5
    for index in labelled:
        future = poses[index + per_step * np.arange(1, model.horizon_steps + 1)]
        expected = in_frame_of(poses[index], future)
        np.testing.assert_allclose(
            cache.arrays['trajectory'][index], expected, rtol=0, atol=1e-4, err_msg=str(index)
        )
    first = cache.arrays['trajectory'][labelled[0]]
    assert (np.diff(first[:, 0]) > 0).all() and first[0, 0] > 1.0  # driving forward


def test_clips_are_consecutive_labelled_frames_as_the_inference_core_builds_them(
    bag, cache_root, settings, cache, model
):
    dataset = DrivingDataset([bag], cache_root, settings, encode, clip_length=2, progress=False)
    labelled = cache.arrays['trajectory_valid']
    assert dataset.frames == cache.frames
    assert len(dataset) == labelled.sum() - 1  # the labelled frames are one run
    for bag_index, start in dataset.clips:
        assert bag_index == 0 and labelled[start : start + 2].all()

    rows, cols = model.bev_size
    cells, samples = rows * cols, model.samples_per_cell
    instruction = len(cache.meta['instructions'][0])
    for index in (0, len(dataset) - 1):
        clip = dataset[index]
        start = dataset.clips[index][1]
        shapes = {name: tuple(tensor.shape) for name, tensor in clip.items()}
        assert shapes == {
            'images': (2, 6, 256, 448, 3),
            'lut_weight': (2, cells, samples),
            'ego_motion': (2, 3),
            'ego_state': (2, 3),
            'instruction': (2, 384),
            'map_prior': (2, model.map_prior_channels, rows, cols),
            'map_prior_present': (2, 1),
            'trajectory': (2, model.horizon_steps, 3),
            'bev': (2, len(model.bev_classes), rows, cols),
            'bev_valid': (2,),
            'rationale': (2,),
        }
        np.testing.assert_array_equal(clip['images'].numpy(), cache.images[start : start + 2])
        poses = cache.arrays['pose'][start : start + 2]
        np.testing.assert_array_equal(clip['ego_motion'][0].numpy(), np.zeros(3))
        np.testing.assert_allclose(
            clip['ego_motion'][1].numpy(), relative_motion(tuple(poses[0]), tuple(poses[1]))
        )
        assert clip['ego_motion'][1, 0] > 0.5  # it moved forward between the frames
        sums = clip['lut_weight'].numpy().sum(axis=-1)
        assert np.all(np.isclose(sums, 1.0, atol=1e-5) | (sums == 0.0))
        assert (sums > 0.5).any()
        np.testing.assert_allclose(clip['lut_weight'][0].numpy(), dataset.lut.weight)
        np.testing.assert_array_equal(
            clip['trajectory'].numpy(), cache.arrays['trajectory'][start : start + 2]
        )
        assert (clip['instruction'].numpy() == instruction).all()
        np.testing.assert_array_equal(  # the simulator records the map layers
            clip['map_prior'].numpy(), cache.arrays['map_prior'][start : start + 2]
        )
        assert clip['map_prior_present'].tolist() == [[1.0], [1.0]]


def test_clips_of_one_frame_and_bad_clip_lengths(bag, cache_root, settings, cache):
    single = DrivingDataset([bag], cache_root, settings, encode, clip_length=1, progress=False)
    assert len(single) == cache.arrays['trajectory_valid'].sum()
    assert not single[0]['ego_motion'].any()
    with pytest.raises(ValueError, match='clip_length'):
        DrivingDataset([bag], cache_root, settings, encode, clip_length=0, progress=False)
    with pytest.raises(ValueError, match='no bags'):
        DrivingDataset([], cache_root, settings, encode, progress=False)


def _refuse_to_read(*args, **kwargs):
    raise AssertionError('the bag was read again')


def test_cache_is_reused_until_the_bag_changes(bag, settings, tmp_path, monkeypatch):
    copy = tmp_path / BAG
    shutil.copytree(bag, copy)
    root = tmp_path / 'cache'
    first = load_bag(copy, root, settings, encode, progress=False)
    assert first.folder.parent == root and (first.folder / 'meta.json').is_file()

    monkeypatch.setattr(bag_cache, '_write_cache', _refuse_to_read)
    again = load_bag(copy, root, settings, encode, progress=False)
    assert again.folder == first.folder
    dataset = DrivingDataset([copy], root, settings, encode, progress=False)
    assert dataset.bags[0].folder == first.folder
    np.testing.assert_array_equal(again.arrays['trajectory'], first.arrays['trajectory'])

    mcap = copy / f'{BAG}.mcap'
    stat = mcap.stat()
    os.utime(mcap, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10 * NS_PER_S))
    with pytest.raises(AssertionError, match='read again'):
        load_bag(copy, root, settings, encode, progress=False)
    monkeypatch.undo()
    reread = load_bag(copy, root, settings, encode, progress=False)
    assert reread.folder != first.folder and reread.folder.parent == root
    assert reread.meta['fingerprint'] != first.meta['fingerprint']
    for name, values in first.arrays.items():
        np.testing.assert_array_equal(reread.arrays[name], values, err_msg=name)
    assert sorted(p.name for p in root.iterdir()) == sorted(
        [first.folder.name, reread.folder.name]
    )


def test_other_settings_get_a_cache_of_their_own(bag, cache_root, settings, cache, monkeypatch):
    monkeypatch.setattr(bag_cache, '_write_cache', _refuse_to_read)
    other = dataclasses.replace(settings, instruction_topic='/other/instruction')
    assert other.key() != settings.key()
    with pytest.raises(AssertionError, match='read again'):
        load_bag(bag, cache_root, other, encode, progress=False)
    assert load_bag(bag, cache_root, settings, encode, progress=False).folder == cache.folder


def copy_bag(source: Path, target: Path, storage: StoragePlugin, keep=lambda topic: True):
    """Write the source bag's connections and raw messages into a new bag."""
    typestore = make_typestore()
    with Reader(source) as reader, Writer(target, version=9, storage_plugin=storage) as writer:
        connections = {}
        for connection in reader.connections:
            if keep(connection.topic):
                connections[connection.id] = writer.add_connection(
                    connection.topic,
                    connection.msgtype,
                    typestore=typestore,
                    serialization_format=connection.ext.serialization_format,
                    offered_qos_profiles=connection.ext.offered_qos_profiles,
                )
        for connection, log_time_ns, raw in reader.messages(
            connections=[c for c in reader.connections if c.id in connections]
        ):
            writer.write(connections[connection.id], log_time_ns, raw)


def test_sqlite3_bag_gives_the_same_cache_as_mcap(bag, cache, settings, tmp_path):
    sqlite_bag = tmp_path / 'sqlite_bag'
    copy_bag(bag, sqlite_bag, StoragePlugin.SQLITE3)
    assert list(sqlite_bag.glob('*.db3')) and not list(sqlite_bag.glob('*.mcap'))
    converted = load_bag(sqlite_bag, tmp_path / 'cache', settings, encode, progress=False)
    assert sorted(converted.arrays) == sorted(cache.arrays)
    for name, values in cache.arrays.items():
        np.testing.assert_array_equal(converted.arrays[name], values, err_msg=name)
    assert np.array_equal(converted.images, cache.images)
    assert converted.meta['instructions'] == cache.meta['instructions']


def assert_no_cache_left(root: Path) -> None:
    assert not list(root.glob('*.partial-*'))
    assert not root.exists() or not any(root.iterdir())


def test_missing_bag_is_named(settings, tmp_path):
    missing = tmp_path / 'no_such_bag'
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        load_bag(missing, tmp_path / 'cache', settings, encode, progress=False)
    assert_no_cache_left(tmp_path / 'cache')


def test_garbage_bag_is_refused_by_name(settings, tmp_path):
    garbage = tmp_path / 'garbage_bag'
    garbage.mkdir()
    (garbage / 'garbage_bag.mcap').write_bytes(b'\x89MCAP0\r\n' + os.urandom(4096))
    with pytest.raises(BagReadError, match=re.escape(str(garbage))):
        load_bag(garbage, tmp_path / 'cache', settings, encode, progress=False)
    assert_no_cache_left(tmp_path / 'cache')


def test_bag_without_cameras_is_refused(bag, settings, tmp_path):
    odometry_only = tmp_path / 'odometry_only'
    copy_bag(bag, odometry_only, StoragePlugin.MCAP, keep=lambda topic: topic == ODOMETRY_TOPIC)
    with pytest.raises(BagReadError, match=re.escape(str(odometry_only))):
        load_bag(odometry_only, tmp_path / 'cache', settings, encode, progress=False)
    assert_no_cache_left(tmp_path / 'cache')


def test_corrupt_message_is_refused_with_its_topic(bag, settings, tmp_path):
    broken = tmp_path / 'broken'
    typestore = make_typestore()
    with Reader(bag) as reader, Writer(broken, version=9) as writer:
        odometry = next(c for c in reader.connections if c.topic == ODOMETRY_TOPIC)
        connection = writer.add_connection(ODOMETRY_TOPIC, odometry.msgtype, typestore=typestore)
        for _, log_time_ns, raw in reader.messages(connections=[odometry]):
            writer.write(connection, log_time_ns, bytes(raw)[:12])
    with pytest.raises(BagReadError, match=f'{re.escape(str(broken))}.*{ODOMETRY_TOPIC}'):
        load_bag(broken, tmp_path / 'cache', settings, encode, progress=False)
    assert_no_cache_left(tmp_path / 'cache')


def test_a_teacher_shares_the_students_cache(bag, cache_root, settings, cache, monkeypatch):
    monkeypatch.setattr(bag_cache, '_write_cache', _refuse_to_read)
    with_teacher = dataclasses.replace(settings, model=teacher())
    assert load_bag(bag, cache_root, with_teacher, encode, progress=False).folder == cache.folder
    smaller = dataclasses.replace(settings, model=student(image_height=128))
    assert smaller.key() != settings.key()
