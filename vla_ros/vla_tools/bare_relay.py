"""Bare rclpy transport of the pipeline's messages: the baseline `vla bench pipeline` divides by.

A `BareRelay` stands in for one pipeline node: it subscribes to that node's inputs with the same
QoS and, as soon as an input is complete, publishes recorded copies of the node's real outputs
(same types and sizes, restamped as the node stamps them) without computing anything. Four
relays in four processes move the same messages through the same hops as the pipeline, so the
latency and CPU they take are what rclpy and DDS alone cost; the rest of the pipeline's is work.
Like the nodes, a relay takes its inputs as serialized bytes (raw subscriptions: only the
header's stamp is read) and publishes serialized bytes, keeping megabyte buffers in reused heap
memory: the floor is the cheapest way rclpy moves these messages, not rclpy's message objects.

Run as `python -m vla_tools.bare_relay STAGE TEMPLATE_DIR`; the templates are serialised messages
named `<topic>.cdr` (e.g. `vla_plan.cdr` for vla/plan).
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from nav_msgs.msg import OccupancyGrid
from nav_msgs.msg import Path as PathMessage
from rclpy.node import Node
from rclpy.qos import QoSProfile
from rclpy.serialization import deserialize_message
from sensor_msgs.msg import Image
from vla_msgs.msg import SafetyStatus, SensorFrame, SensorStatus, Trajectory, VlaPlan

from vla_perception.rig import RigConfig, default_rig_path
from vla_ros.cdr import header_stamp_ns, write_stamp
from vla_ros.large_buffers import keep_large_buffers
from vla_ros.node_main import run_node
from vla_ros.qos import RELIABLE, SENSOR_DATA
from vla_ros.stamps import to_time

FRAME_QOS = QoSProfile(depth=1, reliability=SENSOR_DATA.reliability)  # as vla_inference_node
OUTPUTS = {  # stage -> (topic, type, QoS) of what the real node publishes per input
    'sync': (
        ('vla/sensor_frame', SensorFrame, SENSOR_DATA),
        ('vla/sensor_status', SensorStatus, RELIABLE),
    ),
    'inference': (('vla/plan', VlaPlan, RELIABLE), ('vla/neural_map', OccupancyGrid, RELIABLE)),
    'safety': (
        ('vla/trajectory', Trajectory, RELIABLE),
        ('vla/safety_status', SafetyStatus, RELIABLE),
    ),
    'output': (('vla/path', PathMessage, RELIABLE),),
}
STAGES = tuple(OUTPUTS)


def template_file(directory: Path, topic: str) -> Path:
    """Return where the recorded message of `topic` is kept."""
    return directory / f'{topic.strip("/").replace("/", "_")}.cdr'


class BareRelay(Node):
    """Forward recorded outputs of one pipeline stage on each complete input; compute nothing."""

    def __init__(self, stage: str, templates: Path, rig: RigConfig, **kwargs) -> None:
        super().__init__(f'bare_{stage}_relay', **kwargs)
        keep_large_buffers()  # as the sync and inference nodes do
        self.outputs = []
        for topic, kind, qos in OUTPUTS[stage]:
            template = bytearray(template_file(templates, topic).read_bytes())
            self.outputs.append((self.create_publisher(kind, topic, qos), template))
        if stage == 'sync':
            self._cameras = len(rig.cameras)
            self._images: Counter[int] = Counter()
            for spec in rig.cameras:
                self._subscribe(Image, spec.image_topic, self._on_image, SENSOR_DATA)
        elif stage == 'inference':
            self._subscribe(SensorFrame, 'vla/sensor_frame', self._publish, FRAME_QOS)
        elif stage == 'safety':
            # The monitor's status carries the plan's age: built per plan, as the monitor does.
            self._status_publisher, template = self.outputs.pop()
            self._status = deserialize_message(bytes(template), SafetyStatus)
            self._subscribe(VlaPlan, 'vla/plan', self._on_plan, RELIABLE)
        else:
            self._subscribe(Trajectory, 'vla/trajectory', self._publish, RELIABLE)

    def _subscribe(self, kind: type, topic: str, on_stamp, qos: QoSProfile) -> None:
        """Subscribe to raw `topic`; `on_stamp` gets each message's header stamp (ns)."""

        def on_message(raw: bytes) -> None:
            stamp_ns = header_stamp_ns(raw)
            if stamp_ns is not None:
                on_stamp(stamp_ns)

        self.create_subscription(kind, topic, on_message, qos, raw=True)

    def _publish(self, stamp_ns: int) -> None:
        for publisher, template in self.outputs:
            write_stamp(template, stamp_ns)  # in place: one copy per message, into bytes
            publisher.publish(bytes(template))

    def _on_image(self, stamp_ns: int) -> None:
        self._images[stamp_ns] += 1
        if self._images[stamp_ns] == self._cameras:
            self._images = Counter({s: n for s, n in self._images.items() if s > stamp_ns})
            self._publish(stamp_ns)

    def _on_plan(self, plan_stamp_ns: int) -> None:
        now_ns = self.get_clock().now().nanoseconds
        self._publish(now_ns)
        self._status.header.stamp = to_time(now_ns)
        self._status.plan_age_s = (now_ns - plan_stamp_ns) * 1e-9
        self._status_publisher.publish(self._status)


def main(args: list[str] | None = None) -> None:
    """Run one relay as a process."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('stage', choices=STAGES)
    parser.add_argument('templates', type=Path, help='directory of <topic>.cdr messages')
    parser.add_argument('--rig', type=Path, default=default_rig_path(), help='rig file')
    options, ros_args = parser.parse_known_args(args)
    run_node(
        lambda: BareRelay(options.stage, options.templates, RigConfig.from_file(options.rig)),
        f'bare_{options.stage}_relay',
        ros_args,
    )


if __name__ == '__main__':
    main()
