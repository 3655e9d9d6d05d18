"""Bags written offline with rosbags and bags recorded by ROS are interchangeable.

Offline: messages built with rosbags' own types (registered from the project's .msg files) are
written to a rosbag2 file, read back and deserialised by rclpy. Recorded: rclpy's CDR bytes are
written as ROS's recorder writes them and deserialised by rosbags. Every field must survive both.
"""

import json
import random
from pathlib import Path

import pytest
from rclpy.serialization import deserialize_message, serialize_message
from rosbags.rosbag2 import Reader, StoragePlugin, Writer

from message_trees import (
    from_rclpy,
    from_rosbags,
    message_class,
    random_tree,
    to_rclpy,
    to_rosbags,
)
from repo_paths import MESSAGE_TYPES
from vla_ros.bag_types import find_msg_dir, make_typestore

STORAGES = [StoragePlugin.MCAP, StoragePlugin.SQLITE3]


@pytest.fixture(scope='module')
def typestore():
    return make_typestore()


@pytest.fixture(scope='module')
def trees() -> dict[str, dict]:
    rng = random.Random(7)
    return {type_name: random_tree(type_name, rng) for type_name in MESSAGE_TYPES}


def bag_name(type_name: str) -> str:
    """Return the rosbag2 type name, `pkg/msg/Name`."""
    package, name = type_name.split('/')
    return f'{package}/msg/{name}'


def write_bag(path: Path, storage: StoragePlugin, typestore, records: dict[str, bytes]) -> None:
    """Write one CDR message per type, each on a topic of its own."""
    with Writer(path, version=9, storage_plugin=storage) as writer:
        for index, (type_name, raw) in enumerate(records.items()):
            connection = writer.add_connection(
                f'/bag_round_trip/t{index}', bag_name(type_name), typestore=typestore
            )
            writer.write(connection, 1_000_000_000 + index, raw)


def read_bag(path: Path) -> dict[str, bytes]:
    """Return the raw CDR bytes of each type in the bag, checking there is one of each."""
    records = {}
    with Reader(path) as reader:
        for connection, _timestamp, raw in reader.messages():
            type_name = connection.msgtype.replace('/msg/', '/')
            assert type_name not in records, f'{type_name} read twice'
            records[type_name] = raw
    return records


@pytest.mark.parametrize('storage', STORAGES, ids=lambda storage: storage.name.lower())
def test_offline_written_bag_deserialises_with_rclpy(tmp_path, typestore, trees, storage):
    records = {
        type_name: bytes(
            typestore.serialize_cdr(
                to_rosbags(tree, bag_name(type_name), typestore), bag_name(type_name)
            )
        )
        for type_name, tree in trees.items()
    }
    write_bag(tmp_path / 'offline', storage, typestore, records)
    read = read_bag(tmp_path / 'offline')
    assert sorted(read) == sorted(MESSAGE_TYPES)
    for type_name, raw in read.items():
        message = deserialize_message(raw, message_class(type_name))
        assert from_rclpy(message) == trees[type_name], type_name


@pytest.mark.parametrize('storage', STORAGES, ids=lambda storage: storage.name.lower())
def test_ros_serialised_bag_deserialises_with_rosbags(tmp_path, typestore, trees, storage):
    records = {
        type_name: serialize_message(to_rclpy(tree, type_name))
        for type_name, tree in trees.items()
    }
    write_bag(tmp_path / 'recorded', storage, typestore, records)
    read = read_bag(tmp_path / 'recorded')
    assert read == records
    for type_name, raw in read.items():
        message = typestore.deserialize_cdr(raw, bag_name(type_name))
        assert from_rosbags(message) == trees[type_name], type_name


@pytest.mark.parametrize('type_name', MESSAGE_TYPES)
def test_type_hash_equals_the_one_ros_generated(typestore, type_name: str):
    """rosbag2 identifies types by RIHS01 hash: offline bags must declare ROS's own."""
    generated = json.loads((find_msg_dir() / f'{type_name.split("/")[1]}.json').read_text())
    ros_hash = next(
        entry['hash_string']
        for entry in generated['type_hashes']
        if entry['type_name'] == bag_name(type_name)
    )
    assert typestore.hash_rihs01(bag_name(type_name)) == ros_hash


def test_missing_definitions_name_the_searched_paths(monkeypatch, tmp_path):
    monkeypatch.setenv('AMENT_PREFIX_PATH', str(tmp_path))
    with pytest.raises(FileNotFoundError, match=str(tmp_path / 'share' / 'no_such_msgs' / 'msg')):
        find_msg_dir('no_such_msgs')
