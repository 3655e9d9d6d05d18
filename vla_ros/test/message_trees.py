"""Fully populated messages of any ROS 2 type, as plain value trees, rclpy and rosbags objects.

Round-trip tests must cover every field of every interface, including ones added later, so the
values are generated from the message introspection rather than written by hand. A value tree
(dicts, lists, Python scalars) is the neutral form both rclpy and rosbags messages convert to.
"""

import dataclasses
import importlib
import random
import re
from typing import Any

import numpy as np

INTEGER_RANGES = {
    'int8': (-(2**7), 2**7 - 1),
    'uint8': (0, 2**8 - 1),
    'octet': (0, 2**8 - 1),
    'int16': (-(2**15), 2**15 - 1),
    'uint16': (0, 2**16 - 1),
    'int32': (-(2**31), 2**31 - 1),
    'uint32': (0, 2**32 - 1),
    'int64': (-(2**63), 2**63 - 1),
    'uint64': (0, 2**64 - 1),
}
NUMPY_DTYPES = {
    'boolean': np.bool_,
    'float': np.float32,
    'double': np.float64,
    **{name: np.dtype(name if name != 'octet' else 'uint8').type for name in INTEGER_RANGES},
}
# Text a driving stack really sees, non-ASCII included (instructions are not always English).
STRINGS = [
    '',
    'base_link',
    'front_left',
    'take the next exit',
    'Nimm die nächste Ausfahrt',
    '左转',
]

SEQUENCE = re.compile(r'sequence<(?P<element>[^,>]+)(?:, (?P<bound>\d+))?>')
ARRAY = re.compile(r'(?P<element>.+)\[(?P<size>\d+)\]')
BOUNDED_STRING = re.compile(r'string<=(?P<bound>\d+)')


def message_class(type_name: str) -> type:
    """Return the rclpy class of `pkg/Msg` or `pkg/msg/Msg`."""
    package, *_, name = type_name.split('/')
    return getattr(importlib.import_module(f'{package}.msg'), name)


def _element_type(type_str: str) -> tuple[str, int | None, bool]:
    """Split a field type into (element type, length or bound, is fixed-size array)."""
    if match := SEQUENCE.fullmatch(type_str):
        bound = match['bound']
        return match['element'], int(bound) if bound else None, False
    if match := ARRAY.fullmatch(type_str):
        return match['element'], int(match['size']), True
    return type_str, None, False


def random_tree(type_str: str, rng: random.Random, max_items: int = 3) -> Any:
    """Return a random value tree for a field or message type (non-default, finite values)."""
    element, length, fixed = _element_type(type_str)
    if element != type_str:
        count = length if fixed else rng.randint(1, min(max_items, length or max_items))
        return [random_tree(element, rng, max_items) for _ in range(count)]
    if '/' in type_str:
        fields = message_class(type_str).get_fields_and_field_types()
        return {
            name: random_tree(field_type, rng, max_items) for name, field_type in fields.items()
        }
    if type_str in INTEGER_RANGES:
        return rng.randint(*INTEGER_RANGES[type_str])
    if type_str == 'boolean':
        return rng.random() < 0.5
    if type_str == 'float':
        return float(np.float32(rng.uniform(-1e4, 1e4)))  # exactly representable in float32
    if type_str == 'double':
        return rng.uniform(-1e9, 1e9)
    if type_str == 'string' or BOUNDED_STRING.fullmatch(type_str):
        return rng.choice(STRINGS[1:])
    raise NotImplementedError(f'no random values for field type {type_str!r}')


def to_rclpy(tree: dict, type_name: str) -> Any:
    """Build the rclpy message of `type_name` from a value tree."""
    cls = message_class(type_name)
    message = cls()
    for name, field_type in cls.get_fields_and_field_types().items():
        element, _, _ = _element_type(field_type)
        value = tree[name]
        if '/' in element:
            value = (
                [to_rclpy(item, element) for item in value]
                if element != field_type
                else to_rclpy(value, element)
            )
        setattr(message, name, value)
    return message


def from_rclpy(message: Any) -> dict:
    """Return the value tree of an rclpy message."""
    tree = {}
    for name, field_type in message.get_fields_and_field_types().items():
        element, _, _ = _element_type(field_type)
        value = getattr(message, name)
        if '/' in element:
            tree[name] = (
                [from_rclpy(item) for item in value]
                if element != field_type
                else from_rclpy(value)
            )
        elif element != field_type:
            tree[name] = [_scalar(item) for item in value]
        else:
            tree[name] = _scalar(value)
    return tree


def to_rosbags(tree: dict, type_name: str, typestore: Any) -> Any:
    """Build the rosbags message of `type_name` (`pkg/msg/Msg`) from a value tree."""
    package, *_, name = type_name.split('/')
    fields = message_class(type_name).get_fields_and_field_types()
    values = {}
    for field, field_type in fields.items():
        element, _, _ = _element_type(field_type)
        value = tree[field]
        if '/' in element:
            element_name = '/msg/'.join(element.split('/'))
            values[field] = (
                [to_rosbags(item, element_name, typestore) for item in value]
                if element != field_type
                else to_rosbags(value, element_name, typestore)
            )
        elif element != field_type and element in NUMPY_DTYPES:
            values[field] = np.array(value, dtype=NUMPY_DTYPES[element])
        else:
            values[field] = value
    return typestore.types[f'{package}/msg/{name}'](**values)


def from_rosbags(message: Any) -> dict:
    """Return the value tree of a rosbags message."""
    tree = {}
    for field in dataclasses.fields(message):
        # rosbags lists constants (upper case by ROS naming rules) and __msgtype__ as fields too.
        if field.name.startswith('__') or field.name.isupper():
            continue
        value = getattr(message, field.name)
        if dataclasses.is_dataclass(value):
            tree[field.name] = from_rosbags(value)
        elif isinstance(value, np.ndarray):
            tree[field.name] = value.tolist()
        elif isinstance(value, list):
            tree[field.name] = [
                from_rosbags(item) if dataclasses.is_dataclass(item) else _scalar(item)
                for item in value
            ]
        else:
            tree[field.name] = _scalar(value)
    return tree


def _scalar(value: Any) -> Any:
    """Return a plain Python scalar for numpy and bytes scalars."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bytes) and len(value) == 1:
        return value[0]
    return value
