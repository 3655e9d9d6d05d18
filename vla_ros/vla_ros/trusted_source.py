"""Which node sent a message: accept a topic's messages only from the one node trusted with it.

A second publisher on a topic (a misconfigured node, a replayed bag, a test tool left running)
is otherwise followed like the real one. rclpy gives each message's publisher GID (its message
info); the ROS graph maps GIDs to the node that owns the publisher. This tells a node's own
publishers from anyone else's on a cooperative network; it is not authentication: anyone can
name a node alike. On a real network that is SROS2's job (docs/SAFETY.md, "Trusted sources").
"""

from rclpy.node import Node
from rclpy.subscription import MessageInfo

# The graph's name for a publisher whose node it has not discovered yet (rmw's placeholder).
UNKNOWN_NODE = '_NODE_NAME_UNKNOWN_'


def qualified_name(namespace: str, name: str) -> str:
    """Return a node's fully qualified name ('/ns/name'; '/name' in the root namespace)."""
    return f'{namespace.rstrip("/")}/{name}'


class TrustedSource:
    """Tell whether a message on `topic` came from the trusted node (resolved like a topic).

    `trusted` is a node name relative to this node's namespace, or absolute; empty trusts every
    publisher. Senders are remembered per publisher GID (a GID names one publisher for its
    life); a publisher whose node the graph does not know yet is refused and asked about again
    with its next message.
    """

    def __init__(self, node: Node, topic: str, trusted: str) -> None:
        self.node = node
        self.topic = node.resolve_topic_name(topic)
        self.trusted = (
            trusted
            if not trusted or trusted.startswith('/')
            else qualified_name(node.get_namespace(), trusted)
        )
        self.refused = 0
        self.last_refused = 'none'
        self._senders: dict[bytes, str] = {}

    def refusal(self, info: MessageInfo) -> str | None:
        """Return None for a message of the trusted node, else who sent it (and count it)."""
        if not self.trusted:
            return None
        sender = self._sender(info)
        if sender == self.trusted:
            return None
        self.refused += 1
        self.last_refused = sender
        return sender

    def _sender(self, info: MessageInfo) -> str:
        gid = info.get('publisher_gid') if isinstance(info, dict) else None
        if gid is None:
            return 'a publisher without a GID'
        key = bytes(gid['data'])
        if key in self._senders:
            return self._senders[key]
        for endpoint in self.node.get_publishers_info_by_topic(self.topic):
            if bytes(endpoint.endpoint_gid) == key:
                if endpoint.node_name == UNKNOWN_NODE:  # its node not discovered yet
                    break
                sender = qualified_name(endpoint.node_namespace, endpoint.node_name)
                self._senders[key] = sender
                return sender
        return 'a publisher not (yet) known in the graph'
