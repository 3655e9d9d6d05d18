"""Whole ROS messages read from their serialized (CDR) bytes, byte arrays as numpy views.

Also `CdrWriter`, for a node that writes a large message's bytes straight from its own data.

rclpy turns a received message into Python objects before a callback sees it, copying every
byte array twice (into the C message, then into a Python array): 0.7 ms for a 1280x720 image
and 1.3 ms for the 2 MB SensorFrame on the (loaded) development VM, on the node's only thread.
A raw subscription hands over the bytes instead, and `read_message` walks them by the message
type's own field list (rosidl's SLOT_TYPES), so no layout is written out by hand: numbers become
Python numbers, uint8/octet arrays become read-only numpy views of the received bytes (no copy),
other numeric arrays numpy arrays, nested messages attribute namespaces with the same field
names as the message (the nodes' cores take messages by duck typing) or, for the types named in
`native`, real message objects (a std_msgs/Header to put in a reply).

Every length is checked against the bytes left before anything is read, so a truncated message
or a length field that lies raises `MalformedMessage` with a one-line reason, never an
out-of-bounds read or a huge allocation; so does any representation but plain CDR (XCDR1).

A reader that needs a few fields of a large message names them (`fields`): the others are still
walked and checked, but not built, and lists of fixed-layout messages (trajectory points) are
stepped over by arithmetic: the safety monitor reads a plan's selected trajectory without the
Python objects of its 16 candidates.
"""

from __future__ import annotations

import importlib
import struct
from collections.abc import Callable, Collection
from functools import cache
from types import SimpleNamespace
from typing import Any

import numpy as np
from rosidl_parser.definition import (
    AbstractGenericString,
    AbstractNestedType,
    AbstractWString,
    Array,
    BasicType,
    NamespacedType,
)

from vla_ros.cdr import ENCAPSULATION_BYTES, byte_order
from vla_ros.stamps import NS_PER_S

# rosidl basic type -> struct format (CDR sizes; each aligned to its own size).
_FORMATS = {
    'boolean': '?',
    'octet': 'B',
    'char': 'B',
    'uint8': 'B',
    'int8': 'b',
    'uint16': 'H',
    'int16': 'h',
    'uint32': 'I',
    'int32': 'i',
    'uint64': 'Q',
    'int64': 'q',
    'float': 'f',
    'double': 'd',
}
_BYTES = frozenset({'octet', 'uint8', 'char'})  # arrays of these come back as uint8 views


class MalformedMessage(ValueError):  # noqa: N818 (reads as what it is, like ImageRejected)
    """Serialized bytes that are not the message they claim to be; str() says where and why."""


class _Cursor:
    """A position in one message's bytes, aligned as plain CDR aligns (from the body's start)."""

    __slots__ = ('raw', 'order', 'offset', 'end')

    def __init__(self, raw: bytes, order: str) -> None:
        self.raw, self.order = raw, order
        self.offset, self.end = ENCAPSULATION_BYTES, len(raw)

    def take(self, size: int, alignment: int, what: str) -> int:
        """Align, check that `size` bytes follow, and return where they start."""
        start = self.offset + (-(self.offset - ENCAPSULATION_BYTES) % alignment)
        if start + size > self.end:
            raise MalformedMessage(
                f'truncated: {what} needs {size} bytes at offset {start}, '
                f'the message has {self.end}'
            )
        self.offset = start + size
        return start

    def skip_to(self, offset: int, what: str) -> None:
        """Move to `offset` (past skipped data), refusing one beyond the message's end."""
        if offset > self.end:
            raise MalformedMessage(
                f'truncated: {what} needs {offset - self.offset} bytes at offset {self.offset}, '
                f'the message has {self.end}'
            )
        self.offset = offset

    def count(self, what: str, item_size: int) -> int:
        """Read a sequence's or string's length, refusing one the remaining bytes cannot hold."""
        (length,) = struct.unpack_from(self.order + 'I', self.raw, self.take(4, 4, what))
        if length * item_size > self.end - self.offset:
            raise MalformedMessage(
                f'{what} claims {length} elements of {item_size} bytes, '
                f'only {self.end - self.offset} bytes follow'
            )
        return length


Reader = Callable[[_Cursor], Any]


def _primitive(typename: str, what: str) -> Reader:
    fmt = _FORMATS.get(typename)
    if fmt is None:
        raise TypeError(f'{what}: type {typename!r} is not supported')
    size = struct.calcsize(fmt)

    def read(cursor: _Cursor) -> Any:
        return struct.unpack_from(cursor.order + fmt, cursor.raw, cursor.take(size, size, what))[0]

    return read


def _string(what: str) -> Reader:
    def read(cursor: _Cursor) -> str:
        length = cursor.count(what, 1)
        if length == 0:
            raise MalformedMessage(f'{what}: a string length of 0 (it counts its NUL)')
        start = cursor.take(length, 1, what)
        text = cursor.raw[start : start + length]
        if text[-1] != 0:
            raise MalformedMessage(f'{what}: string not NUL-terminated')
        try:
            return text[:-1].decode()
        except UnicodeDecodeError as error:
            raise MalformedMessage(f'{what}: not UTF-8 ({error.reason})') from None

    return read


def _numbers(typename: str, what: str, fixed: int | None) -> Reader:
    """Read an array (fixed length) or sequence of numbers as one numpy array, no loop."""
    fmt = _FORMATS.get(typename)
    if fmt is None:
        raise TypeError(f'{what}: arrays of {typename!r} are not supported')
    size = struct.calcsize(fmt)
    as_bytes = typename in _BYTES
    dtype = np.dtype(np.uint8 if as_bytes else fmt)

    def read(cursor: _Cursor) -> np.ndarray:
        length = fixed if fixed is not None else cursor.count(what, size)
        start = cursor.take(length * size, size if length else 1, what)
        order = dtype if as_bytes else dtype.newbyteorder(cursor.order)
        return np.frombuffer(cursor.raw, order, length, start)

    return read


def _items(item: Reader, what: str, fixed: int | None) -> Reader:
    def read(cursor: _Cursor) -> list:
        length = fixed if fixed is not None else cursor.count(what, 1)
        return [item(cursor) for _ in range(length)]

    return read


def _field_reader(slot_type: object, what: str, native: frozenset[type]) -> Reader:
    if isinstance(slot_type, AbstractNestedType):
        fixed = slot_type.size if isinstance(slot_type, Array) else None
        value_type = slot_type.value_type
        if isinstance(value_type, BasicType):
            return _numbers(value_type.typename, what, fixed)
        return _items(_field_reader(value_type, what, native), what, fixed)
    if isinstance(slot_type, BasicType):
        return _primitive(slot_type.typename, what)
    if isinstance(slot_type, AbstractWString):
        raise TypeError(f'{what}: wide strings are not supported')
    if isinstance(slot_type, AbstractGenericString):
        return _string(what)
    if isinstance(slot_type, NamespacedType):
        module = importlib.import_module('.'.join(slot_type.namespaces))
        return _message_reader(getattr(module, slot_type.name), native)
    raise TypeError(f'{what}: type {slot_type!r} is not supported')


@cache
def _message_reader(
    message_type: type, native: frozenset[type], wanted: frozenset[str] | None = None
) -> Reader:
    """Compile, once per type, the readers of its fields in their order on the wire.

    With `wanted`, only those fields are built; the others are skipped (`_skipper`).
    """
    names = list(message_type.get_fields_and_field_types())
    build_native = message_type in native
    if wanted is not None and (build_native or not wanted <= set(names)):
        raise TypeError(f'{message_type.__name__}: cannot read only {sorted(wanted)}')
    # A native message's setters insist on native fields: everything inside it is native too.
    inner = frozenset(native | _nested_types(message_type)) if build_native else native
    fields = []
    for name, slot_type in zip(names, message_type.SLOT_TYPES, strict=True):
        what = f'{message_type.__name__}.{name}'
        if wanted is None or name in wanted:
            fields.append((name, _field_reader(slot_type, what, inner)))
        else:
            fields.append((None, _skipper(slot_type, what)))
    make = message_type if build_native else SimpleNamespace

    def read(cursor: _Cursor) -> Any:
        values = {}
        for name, field in fields:
            value = field(cursor)
            if name is not None:
                values[name] = value
        return make(**values)

    return read


def _skipper(slot_type: object, what: str) -> Reader:
    """Compile a reader that checks a field's bytes and moves past them, building nothing big.

    Numbers, strings and numeric arrays are read (a view costs no more than a skip); messages
    are skipped field by field, and sequences of fixed-layout messages by arithmetic.
    """
    value_type = getattr(slot_type, 'value_type', slot_type)
    if not isinstance(value_type, NamespacedType):
        return _field_reader(slot_type, what, frozenset())
    module = importlib.import_module('.'.join(value_type.namespaces))
    message_type = getattr(module, value_type.name)
    layout = _fixed_layout(message_type)
    if layout is not None:
        one = _stepper(layout, what)
    else:
        parts = [
            _skipper(field_type, f'{message_type.__name__}.{name}')
            for name, field_type in zip(
                message_type.get_fields_and_field_types(), message_type.SLOT_TYPES, strict=True
            )
        ]

        def one(cursor: _Cursor, count: int) -> None:
            for _ in range(count):
                for part in parts:
                    part(cursor)

    if not isinstance(slot_type, AbstractNestedType):
        return lambda cursor: one(cursor, 1)
    fixed = slot_type.size if isinstance(slot_type, Array) else None
    least = sum(size for size, _ in layout) if layout else 1

    def skip(cursor: _Cursor) -> None:
        one(cursor, fixed if fixed is not None else cursor.count(what, least))

    return skip


def _fixed_layout(message_type: type) -> list[tuple[int, int]] | None:
    """Return the (size, alignment) of each number of an all-number message, else None."""
    layout = []
    for slot_type in message_type.SLOT_TYPES:
        count = 1
        if isinstance(slot_type, Array):
            count, slot_type = slot_type.size, slot_type.value_type
        if isinstance(slot_type, BasicType) and slot_type.typename in _FORMATS:
            size = struct.calcsize(_FORMATS[slot_type.typename])
            layout += [(size, size)] * count
        elif isinstance(slot_type, NamespacedType):
            module = importlib.import_module('.'.join(slot_type.namespaces))
            inner = _fixed_layout(getattr(module, slot_type.name))
            if inner is None:
                return None
            layout += inner * count
        else:
            return None
    return layout


def _stepper(layout: list[tuple[int, int]], what: str) -> Callable[[_Cursor, int], None]:
    """Step over `count` messages of a fixed layout without reading them.

    An element's size depends only on where it starts modulo the largest alignment; once an
    element's size is a multiple of that, every following one has the same size.
    """
    widest = max((alignment for _, alignment in layout), default=1)

    def size_from(residue: int) -> int:
        offset = residue
        for size, alignment in layout:
            offset += -offset % alignment + size
        return offset - residue

    sizes = [size_from(residue) for residue in range(widest)]

    def step(cursor: _Cursor, count: int) -> None:
        offset = cursor.offset - ENCAPSULATION_BYTES
        for left in range(count, 0, -1):
            size = sizes[offset % widest]
            if size % widest == 0:
                offset += size * left
                break
            offset += size
        cursor.skip_to(offset + ENCAPSULATION_BYTES, what)

    return step


def _nested_types(message_type: type) -> frozenset[type]:
    """Every message type inside `message_type`, at any depth."""
    found: set[type] = set()
    for slot_type in message_type.SLOT_TYPES:
        while isinstance(slot_type, AbstractNestedType):
            slot_type = slot_type.value_type
        if isinstance(slot_type, NamespacedType):
            module = importlib.import_module('.'.join(slot_type.namespaces))
            nested = getattr(module, slot_type.name)
            found |= {nested, *_nested_types(nested)}
    return frozenset(found)


def read_message(
    raw: bytes,
    message_type: type,
    native: Collection[type] = (),
    fields: Collection[str] | None = None,
) -> Any:
    """Read one serialized message of `message_type`; raise MalformedMessage if it is not one.

    Returns a namespace with the message's field names (or a `message_type` if it is in
    `native`); its byte arrays are views of `raw`, which they keep alive. Trailing bytes (CDR
    pads a message to 4) are allowed. With `fields`, the namespace holds only those top-level
    fields; the bytes of the others are checked as well, so the same bytes are refused.
    """
    order = byte_order(raw)
    if order is None:
        head = bytes(raw[:ENCAPSULATION_BYTES]).hex()
        raise MalformedMessage(f'not plain CDR: encapsulation {head!r} (expected 00 00 or 00 01)')
    wanted = None if fields is None else frozenset(fields)
    return _message_reader(message_type, frozenset(native), wanted)(_Cursor(raw, order))


class CdrWriter:
    """Plain little-endian CDR (XCDR1) written field by field, as rclpy serializes a message.

    Each field is aligned to its own size from the body's start. Byte arrays are kept by
    reference until `getvalue`, whose single join is their only copy: building a SensorFrame as
    rclpy messages, then converting and serializing it, cost 1.7 ms of the sync node's frame.
    """

    def __init__(self) -> None:
        self._parts: list[bytes | memoryview] = []
        self._chunk = bytearray(b'\x00\x01\x00\x00')  # encapsulation: plain CDR, little endian
        self._size = 0  # of the body so far

    def _align(self, alignment: int) -> None:
        padding = -self._size % alignment
        self._chunk += bytes(padding)
        self._size += padding

    def numbers(self, code: str, values: object) -> None:
        """Append a fixed-length array of one struct type code (or one number: a 1-tuple)."""
        packed = struct.pack(f'<{len(values)}{code}', *values)
        if packed:
            self._align(struct.calcsize(code))
        self._chunk += packed
        self._size += len(packed)

    def number(self, code: str, value: float | int | bool) -> None:
        """Append one number of a struct type code ('I' uint32, 'd' float64, '?' bool, ...)."""
        self.numbers(code, (value,))

    def string(self, text: str) -> None:
        """Append a string: its length with the terminating NUL, its UTF-8 bytes, the NUL."""
        encoded = text.encode() + b'\x00'
        self.number('I', len(encoded))
        self._chunk += encoded
        self._size += len(encoded)

    def stamp(self, stamp_ns: int) -> None:
        """Append a builtin_interfaces/Time (as vla_ros.stamps.to_time splits it)."""
        self.number('i', stamp_ns // NS_PER_S)
        self.number('I', stamp_ns % NS_PER_S)

    def header(self, stamp_ns: int, frame_id: str) -> None:
        """Append a std_msgs/Header."""
        self.stamp(stamp_ns)
        self.string(frame_id)

    def sequence(self, code: str, values: object) -> None:
        """Append a sequence of numbers: its length, then the numbers."""
        self.number('I', len(values))
        self.numbers(code, values)

    def byte_sequence(self, data: object) -> None:
        """Append a uint8 sequence from any contiguous buffer, kept by reference until the join."""
        view = memoryview(data).cast('B')
        self.number('I', view.nbytes)
        self._parts += [bytes(self._chunk), view]
        self._chunk = bytearray()
        self._size += view.nbytes

    def getvalue(self) -> bytes:
        """Return the serialized message (rclpy publishes bytes as they are)."""
        return b''.join([*self._parts, self._chunk])
