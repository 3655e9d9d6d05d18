"""Bare rclpy transport of the pipeline's messages: the baseline `vla bench pipeline` divides by.

A `BareRelay` stands in for one pipeline node: it subscribes to that node's inputs with the same
QoS and, as soon as an input is complete, publishes recorded copies of the node's real outputs
(same types and sizes, restamped as the node stamps them) without computing anything. Four
relays in four processes move the same messages through the same hops as the pipeline, so the
latency and CPU they take are what rclpy and DDS alone cost; the rest of the pipeline's is work.

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
from vla_perception.synchronizer import stamp_to_ns
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
        self.outputs = []
        for topic, kind, qos in OUTPUTS[stage]:
            message = deserialize_message(template_file(templates, topic).read_bytes(), kind)
            self.outputs.append((self.create_publisher(kind, topic, qos), message))
        if stage == 'sync':
            self._cameras = len(rig.cameras)
            self._images: Counter[int] = Counter()
            for spec in rig.cameras:
                self.create_subscription(Image, spec.image_topic, self._on_image, SENSOR_DATA)
        elif stage == 'inference':
            self.create_subscription(SensorFrame, 'vla/sensor_frame', self._on_frame, FRAME_QOS)
        elif stage == 'safety':
            self.create_subscription(VlaPlan, 'vla/plan', self._on_plan, RELIABLE)
        else:
            self.create_subscription(Trajectory, 'vla/trajectory', self._on_trajectory, RELIABLE)

    def _publish(self, stamp_ns: int) -> None:
        for publisher, message in self.outputs:
            message.header.stamp = to_time(stamp_ns)
            publisher.publish(message)

    def _on_image(self, message: Image) -> None:
        stamp_ns = stamp_to_ns(message.header.stamp)
        self._images[stamp_ns] += 1
        if self._images[stamp_ns] == self._cameras:
            self._images = Counter({s: n for s, n in self._images.items() if s > stamp_ns})
            self._publish(stamp_ns)

    def _on_frame(self, message: SensorFrame) -> None:
        self._publish(stamp_to_ns(message.header.stamp))

    def _on_plan(self, message: VlaPlan) -> None:
        now_ns = self.get_clock().now().nanoseconds
        status = self.outputs[1][1]
        status.plan_age_s = (now_ns - stamp_to_ns(message.header.stamp)) * 1e-9
        self._publish(now_ns)

    def _on_trajectory(self, message: Trajectory) -> None:
        self._publish(stamp_to_ns(message.header.stamp))


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
