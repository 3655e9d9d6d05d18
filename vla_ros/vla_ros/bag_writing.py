"""Write rclpy messages to rosbag2 bags (MCAP or sqlite3) with rosbags, as `ros2 bag` would.

The simulator's recorder and the replay tool write their bags through this, with each topic's
publisher QoS recorded so `ros2 bag play` offers it again.
"""

from rclpy.duration import Duration
from rclpy.qos import QoSProfile
from rclpy.serialization import serialize_message
from rosbags.interfaces import (
    Connection,
    Qos,
    QosDurability,
    QosHistory,
    QosLiveliness,
    QosReliability,
    QosTime,
)
from rosbags.rosbag2 import Writer
from rosbags.typesys.store import Typestore


def _type_name(message: object) -> str:
    """Return the rosbag2 type name of an rclpy message, `pkg/msg/Name`."""
    cls = type(message)
    return f'{cls.__module__.split(".")[0]}/msg/{cls.__name__}'


def _qos_time(duration: Duration) -> QosTime:
    sec, nsec = divmod(duration.nanoseconds, 1_000_000_000)
    return QosTime(sec, nsec)


def offered_qos(profile: QoSProfile) -> Qos:
    """Return a publisher's QoS as rosbag2 records it, for `ros2 bag play` to offer again.

    Without it, replay would offer volatile durability and a latched subscriber (the inference
    node's instruction) would refuse the player.
    """
    return Qos(
        history=QosHistory[profile.history.name],
        depth=profile.depth,
        reliability=QosReliability[profile.reliability.name],
        durability=QosDurability[profile.durability.name],
        deadline=_qos_time(profile.deadline),
        lifespan=_qos_time(profile.lifespan),
        liveliness=QosLiveliness[profile.liveliness.name],
        liveliness_lease_duration=_qos_time(profile.liveliness_lease_duration),
        avoid_ros_namespace_conventions=profile.avoid_ros_namespace_conventions,
    )


class MessageBagWriter:
    """rclpy messages into a rosbag2 bag: each topic's connection is added with its first one.

    rclpy leaves CDR alignment padding as whatever its buffer held, so one message serialises
    to different bytes each time. Each message is re-serialised by rosbags, which writes the same
    bytes with zero padding: the same messages then give identical bags, byte for byte.
    """

    def __init__(self, writer: Writer, typestore: Typestore, qos: dict[str, QoSProfile]) -> None:
        self.writer = writer
        self.typestore = typestore
        self.qos = qos
        self.connections: dict[str, Connection] = {}

    def write(self, topic: str, message: object, stamp_ns: int) -> None:
        """Serialise `message` with rclpy (padding zeroed) and write it at `stamp_ns`."""
        connection = self.connections.get(topic)
        if connection is None:
            connection = self.writer.add_connection(
                topic,
                _type_name(message),
                typestore=self.typestore,
                offered_qos_profiles=[offered_qos(self.qos[topic])],
            )
            self.connections[topic] = connection
        msgtype = connection.msgtype
        raw = self.typestore.deserialize_cdr(serialize_message(message), msgtype)
        self.writer.write(connection, stamp_ns, self.typestore.serialize_cdr(raw, msgtype))
