"""The few fields of a serialized (CDR) message read or written without deserializing it.

rclpy builds a whole message as Python objects before a callback sees it: 0.7-0.8 s for a list
of 20 000 obstacles on the (loaded) development VM (issue 21, docs/SAFETY.md). A raw
subscription hands over the bytes instead, and a list's length sits right after the message's
header, so an oversized list can be refused for the cost of reading two integers.

Layout (plain CDR, XCDR1, as Fast DDS and rmw serialize ROS messages): 4 bytes of encapsulation
(representation 0x0000 big endian, 0x0001 little endian; 2 bytes of options), then the body,
aligned from its own start: a std_msgs/Header is stamp.sec (int32), stamp.nanosec (uint32),
frame_id (uint32 length counting the terminating NUL, then the characters).
"""

import struct

from vla_ros.stamps import NS_PER_S

ENCAPSULATION_BYTES = 4
HEADER_FIXED_BYTES = 12  # stamp.sec, stamp.nanosec, frame_id's length


def byte_order(raw: bytes) -> str | None:
    """Return struct's byte order of plain CDR, or None for any other representation."""
    if len(raw) < ENCAPSULATION_BYTES or raw[0] != 0 or raw[1] not in (0, 1):
        return None
    return '<' if raw[1] == 1 else '>'


def sequence_length_after_header(raw: bytes, byte_fields: int = 0) -> int | None:
    """Return how many elements the sequence after the header holds, reading only its length.

    The message must begin with a std_msgs/Header followed by `byte_fields` one-byte fields
    (uint8, bool, char) and then the sequence (vla_msgs/ObstacleArray: 1, the source;
    autoware_perception_msgs/PredictedObjects: 0). None when `raw` is not plain CDR or too short:
    the full deserialization then decides.
    """
    order = byte_order(raw)
    if order is None or len(raw) < ENCAPSULATION_BYTES + HEADER_FIXED_BYTES:
        return None
    (frame_id_length,) = struct.unpack_from(f'{order}I', raw, ENCAPSULATION_BYTES + 8)
    offset = ENCAPSULATION_BYTES + (
        (HEADER_FIXED_BYTES + frame_id_length + byte_fields + 3) & ~3  # uint32 aligns to 4
    )
    if offset + 4 > len(raw):
        return None
    return struct.unpack_from(f'{order}I', raw, offset)[0]


def header_stamp_ns(raw: bytes) -> int | None:
    """Return the stamp of a serialized message that begins with a std_msgs/Header, in ns.

    None when `raw` is not plain CDR or too short to hold the stamp.
    """
    order = byte_order(raw)
    if order is None or len(raw) < ENCAPSULATION_BYTES + 8:
        return None
    sec, nanosec = struct.unpack_from(f'{order}iI', raw, ENCAPSULATION_BYTES)
    return sec * NS_PER_S + nanosec


def write_stamp(buffer: bytearray, stamp_ns: int) -> None:
    """Stamp, in place, a serialized message that begins with a std_msgs/Header."""
    order = byte_order(buffer)
    if order is None:
        raise ValueError('not a plain CDR message')
    sec, nanosec = divmod(stamp_ns, NS_PER_S)
    struct.pack_into(f'{order}iI', buffer, ENCAPSULATION_BYTES, sec, nanosec)


def restamped(raw: bytes, stamp_ns: int) -> bytes:
    """Return a serialized message that begins with a std_msgs/Header, stamped `stamp_ns`.

    For publishing one large message again and again, fresh each time, without paying for its
    serialization each time (an injector of oversized obstacle lists).
    """
    stamped = bytearray(raw)
    write_stamp(stamped, stamp_ns)
    return bytes(stamped)
