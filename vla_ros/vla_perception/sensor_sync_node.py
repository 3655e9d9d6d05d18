"""sensor_sync_node: N cameras and odometry in, vla_msgs/SensorFrame out, at a fixed rate.

A thin wrapper over SensorSyncCore: it converts messages, holds parameters and QoS, warns about
bad input (once per camera and reason per throttle period) and publishes /diagnostics. Images are
taken serialized and read with numpy views of their bytes (vla_ros.raw_messages): rclpy's own
conversion copies each image twice on this node's only thread (0.7 ms per 1280x720 image). The
SensorFrame is published as the bytes sensor_frame_bytes writes from the frame's arrays.
"""

import array
import contextlib
from dataclasses import fields
from functools import partial

from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import Transform
from nav_msgs.msg import Odometry
from rclpy.clock import Clock, ClockType
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from vla_msgs.msg import CameraFrame, InputStatus, SensorFrame, SensorStatus

from vla_perception.health import Health
from vla_perception.image_preprocessing import ImageRejected, Intrinsics
from vla_perception.odometry import OdometryAtFrame
from vla_perception.offline_sync import step_period_s
from vla_perception.rig import CameraSpec, RigConfig
from vla_perception.sensor_frame_bytes import sensor_frame_bytes
from vla_perception.sensor_sync import CameraImage, SensorSyncConfig, SensorSyncCore, SyncedFrame
from vla_perception.synchronizer import NS_PER_S, SyncConfig, stamp_to_ns
from vla_ros.diagnostics import ERROR, OK, WARN, diagnostic_array, diagnostic_status
from vla_ros.install_paths import vla_ros_file
from vla_ros.large_buffers import keep_large_buffers
from vla_ros.node_main import run_node
from vla_ros.parameters import ParameterSpec, declare_parameters
from vla_ros.qos import LATCHED, RELIABLE, SENSOR_DATA
from vla_ros.raw_messages import MalformedMessage, read_message
from vla_ros.stamps import to_time

PARAMETERS = [
    ParameterSpec(
        'rig_file',
        '',
        'Rig file (YAML): camera names, topics, transport, extrinsics. '
        'Empty: the packaged config/rig_surround.yaml.',
    ),
    ParameterSpec('odometry_topic', '/localization/kinematic_state', 'nav_msgs/Odometry input.'),
    ParameterSpec('rate_hz', 10.0, 'Upper bound of the frame rate, Hz.', 0.1, 100.0),
    ParameterSpec(
        'max_skew_s',
        0.05,
        'Largest |image stamp - frame stamp| of a matched camera, s.',
        0.001,
        1.0,
    ),
    ParameterSpec(
        'deadline_s',
        0.1,
        'Wait for missing cameras at most this long after the first '
        'image of a frame arrived, s; then emit with them marked.',
        0.001,
        2.0,
    ),
    ParameterSpec(
        'stale_timeout_s',
        0.5,
        'A camera silent this long is no longer waited for, and older images are not reused, s.',
        0.01,
        10.0,
    ),
    ParameterSpec(
        'time_jump_s',
        0.5,
        'Time running backwards by more than this resets the matcher (bag loop, clock reset), s.',
        0.01,
        3600.0,
    ),
    ParameterSpec('queue_size', 8, 'Images kept per camera while matching.', 1, 100),
    ParameterSpec('output_width', 448, 'Width of the model-ready images, px.', 16, 4096),
    ParameterSpec('output_height', 256, 'Height of the model-ready images, px.', 16, 4096),
    ParameterSpec('undistort', False, 'Undistort images (plumb_bob, rational_polynomial).'),
    ParameterSpec(
        'odometry_timeout_s',
        0.2,
        'Odometry further than this from a frame is MISSING, s.',
        0.001,
        10.0,
    ),
    ParameterSpec(
        'camera_info_transient_local',
        True,
        'Subscribe to camera_info reliable and '
        'transient-local (latched publishers); false: best-effort volatile, which '
        'matches every publisher (REP 2003).',
    ),
    ParameterSpec(
        'warning_period_s',
        5.0,
        'At most one warning per camera and problem per period, s.',
        0.1,
        3600.0,
    ),
]
DIAGNOSTICS_PERIOD_S = 1.0


def sync_config(rig: RigConfig, params: dict[str, object]) -> SensorSyncConfig:
    """Build the core's configuration from the node's parameter values (also the driver's)."""
    matching = {f.name: params[f.name] for f in fields(SyncConfig) if f.name != 'camera_names'}
    return SensorSyncConfig(
        SyncConfig(rig.names, **matching),
        output_width=params['output_width'],
        output_height=params['output_height'],
        undistort=params['undistort'],
        odometry_timeout_s=params['odometry_timeout_s'],
    )


def input_status(name: str, health: Health, stamp_ns: int, skew_ns: int) -> InputStatus:
    """Build the InputStatus of one stream."""
    return InputStatus(
        name=name, health=int(health), stamp=to_time(stamp_ns), skew_s=skew_ns / NS_PER_S
    )


def camera_info_message(intrinsics: Intrinsics, stamp: Time, frame_id: str) -> CameraInfo:
    """Build the CameraInfo of a model-ready image."""
    info = CameraInfo(
        width=intrinsics.width,
        height=intrinsics.height,
        distortion_model=intrinsics.distortion_model,
    )
    info.header.stamp, info.header.frame_id = stamp, frame_id
    info.k = intrinsics.k.reshape(-1).tolist()
    info.p = intrinsics.p.reshape(-1).tolist()
    info.d = intrinsics.d.tolist()
    info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    return info


def camera_status(camera: CameraImage) -> InputStatus:
    """Build the InputStatus of one camera of a frame."""
    return input_status(camera.spec.name, camera.health, camera.stamp_ns, camera.skew_ns)


def odometry_status(frame: SyncedFrame) -> InputStatus:
    """Build the InputStatus of a frame's odometry (stamped 0 when it has none)."""
    odometry = frame.odometry
    sample_stamp = frame.stamp_ns + odometry.skew_ns if odometry.sample else 0
    return input_status('odometry', odometry.health, sample_stamp, odometry.skew_ns)


def camera_frame_message(camera: CameraImage) -> CameraFrame:
    """Build one camera of a SensorFrame; the image is empty when the camera has none."""
    spec: CameraSpec = camera.spec
    stamp = to_time(camera.stamp_ns)
    message = CameraFrame()
    message.status = camera_status(camera)
    message.image.header.stamp, message.image.header.frame_id = stamp, spec.frame_id
    if camera.image is not None:
        rgb = camera.image.rgb
        message.image.height, message.image.width = rgb.shape[:2]
        message.image.encoding, message.image.step = 'rgb8', rgb.shape[1] * 3
        data = array.array('B')
        data.frombytes(rgb)  # one copy; rclpy keeps an array('B') as it is
        message.image.data = data
    if camera.intrinsics is not None:
        message.camera_info = camera_info_message(camera.intrinsics, stamp, spec.frame_id)
    message.extrinsic = Transform()
    t, q = message.extrinsic.translation, message.extrinsic.rotation
    t.x, t.y, t.z = spec.translation
    q.x, q.y, q.z, q.w = spec.rotation
    return message


def odometry_message(
    odometry: OdometryAtFrame, stamp_ns: int, frame_id: str, child_frame_id: str
) -> Odometry:
    """Build the frame's odometry (zeros when MISSING) in the input odometry's frames."""
    message = Odometry(child_frame_id=child_frame_id)
    message.header.stamp, message.header.frame_id = to_time(stamp_ns), frame_id
    sample = odometry.sample
    if sample is not None:
        pose, twist = message.pose.pose, message.twist.twist
        pose.position.x, pose.position.y, pose.position.z = sample.position.tolist()
        o = pose.orientation
        o.x, o.y, o.z, o.w = sample.orientation.tolist()
        twist.linear.x, twist.linear.y, twist.linear.z = sample.linear_velocity.tolist()
        twist.angular.x, twist.angular.y, twist.angular.z = sample.angular_velocity.tolist()
    return message


def sensor_frame_message(frame: SyncedFrame) -> SensorFrame:
    """Build the SensorFrame of a synchronised frame."""
    message = SensorFrame(sequence=frame.sequence, epoch=frame.epoch, complete=frame.complete)
    message.header.stamp, message.header.frame_id = to_time(frame.stamp_ns), 'base_link'
    message.cameras = [camera_frame_message(camera) for camera in frame.cameras]
    message.odometry_status = odometry_status(frame)
    message.odometry = odometry_message(
        frame.odometry, frame.stamp_ns, frame.odometry_frame_id, frame.odometry_child_frame_id
    )
    return message


def arrival_ns(now_ns: int, stamp_ns: int, deadline_ns: int, simulated: bool) -> int:
    """Return when an image counts as arrived: now, or on simulated time not before its stamp.

    A simulator in lockstep publishes a step's images before that step's /clock tick, so they
    arrive while the clock still reads the previous step; the sync deadline would start on the
    old clock and expire on the tick with the last-published cameras still on their way (a loaded
    soak lost a camera in a quarter of its frames). On simulated time an image therefore arrives
    no earlier than its stamp, trusted for one deadline at most. On wall time the clock is the
    truth: a camera whose clock runs ahead must not hold frames back.
    """
    if not simulated:
        return now_ns
    return max(now_ns, min(stamp_ns, now_ns + deadline_ns))


def sensor_status_message(frame: SyncedFrame) -> SensorStatus:
    """Build the light status that accompanies a frame's SensorFrame."""
    status = SensorStatus(
        sequence=frame.sequence,
        epoch=frame.epoch,
        complete=frame.complete,
        cameras=[camera_status(camera) for camera in frame.cameras],
        odometry=odometry_status(frame),
    )
    status.header.stamp, status.header.frame_id = to_time(frame.stamp_ns), 'base_link'
    return status


def _summary(name: str, values: list[float]) -> dict[str, float]:
    """Return the mean and max of a diagnostics period's values (NaN when there were none)."""
    if not values:
        return {f'{name}_mean': float('nan'), f'{name}_max': float('nan')}
    return {f'{name}_mean': sum(values) / len(values), f'{name}_max': max(values)}


class SensorSyncNode(Node):
    """Publish synchronised, model-ready SensorFrames from a camera rig and odometry."""

    def __init__(self, **kwargs) -> None:
        super().__init__('sensor_sync_node', **kwargs)
        keep_large_buffers()  # a 2 MB frame a frame, without fresh pages each time
        params = declare_parameters(self, PARAMETERS)
        rig_file = params['rig_file'] or vla_ros_file('config/rig_surround.yaml')
        self.rig = RigConfig.from_file(rig_file)
        self.core = SensorSyncCore(self.rig, sync_config(self.rig, params))
        self._deadline_ns = round(params['deadline_s'] * 1e9)
        self._warning_period_ns = round(params['warning_period_s'] * NS_PER_S)
        self._last_warned: dict[tuple[str, str], int] = {}
        self._steady = Clock(clock_type=ClockType.STEADY_TIME)
        self._frames_since_diagnostics = 0
        # Per diagnostics period: image arrival minus capture stamp per camera (transport delay),
        # and frame publication minus the arrival of its newest image (this node's own time).
        self._arrival_delays_ms: dict[str, list[float]] = {name: [] for name in self.rig.names}
        self._processing_ms: list[float] = []
        self._accepted_before = dict.fromkeys(self.rig.names, 0)
        self._last_status: SensorStatus | None = None

        self.frame_publisher = self.create_publisher(SensorFrame, 'vla/sensor_frame', SENSOR_DATA)
        self.status_publisher = self.create_publisher(SensorStatus, 'vla/sensor_status', RELIABLE)
        self.diagnostics_publisher = self.create_publisher(
            DiagnosticArray, '/diagnostics', RELIABLE
        )
        info_qos = LATCHED if params['camera_info_transient_local'] else qos_profile_sensor_data
        for spec in self.rig.cameras:
            image_type = CompressedImage if spec.compressed else Image
            self.create_subscription(
                image_type,
                spec.image_topic,
                partial(self._on_image, spec.name, image_type),
                SENSOR_DATA,
                raw=True,
            )
            self.create_subscription(
                CameraInfo,
                spec.info_topic,
                partial(self._on_camera_info, spec.name),
                info_qos,
                event_callbacks=SubscriptionEventCallbacks(
                    incompatible_qos=partial(self._on_incompatible_info_qos, spec.info_topic)
                ),
            )
        self.create_subscription(
            Odometry, params['odometry_topic'], self._on_odometry, SENSOR_DATA
        )
        self.create_timer(step_period_s(self.core.config.sync), self._step)
        self.create_timer(DIAGNOSTICS_PERIOD_S, self._publish_diagnostics)
        self.get_logger().info(
            f'synchronising {len(self.rig.cameras)} cameras ({", ".join(self.rig.names)}) from '
            f'{rig_file} at up to {params["rate_hz"]} Hz, max skew {params["max_skew_s"]} s, '
            f'deadline {params["deadline_s"]} s, output '
            f'{params["output_width"]}x{params["output_height"]}'
        )

    def destroy_node(self) -> None:
        """Stop the core's threads with the node (construction may have failed before them)."""
        core = getattr(self, 'core', None)
        if core is not None:
            core.close()
        super().destroy_node()

    def _now_ns(self) -> int:
        return self.get_clock().now().nanoseconds

    def _on_image(self, camera: str, image_type: type, raw: bytes) -> None:
        now_ns = self._now_ns()
        try:
            msg = read_message(raw, image_type)
        except MalformedMessage as error:
            rejected = ImageRejected('malformed', f'serialized {image_type.__name__}: {error}')
            self.core.reject_image(camera, rejected, now_ns)
            self._step()
            return
        stamp_ns = stamp_to_ns(msg.header.stamp)
        self._arrival_delays_ms[camera].append((now_ns - stamp_ns) * 1e-6)
        arrived_ns = arrival_ns(
            now_ns, stamp_ns, self._deadline_ns, self.get_clock().ros_time_is_active
        )
        with contextlib.suppress(ImageRejected):  # counted by the core, warned about in _step
            self.core.on_image(camera, msg, arrived_ns)
        self._step()

    def _on_camera_info(self, camera: str, msg: CameraInfo) -> None:
        try:
            self.core.on_camera_info(camera, msg)
        except ImageRejected:
            self._warn_rejections()

    def _on_odometry(self, msg: Odometry) -> None:
        try:
            self.core.on_odometry(msg)
        except ValueError as error:
            self._warn('odometry', 'invalid', f'odometry rejected: {error}')

    def _on_incompatible_info_qos(self, topic: str, _event: object) -> None:
        self._warn(
            topic,
            'qos',
            f'a publisher of {topic} offers QoS incompatible with this '
            "node's camera_info subscription (reliable, transient-local): no intrinsics "
            'will arrive. Set camera_info_transient_local:=false for volatile publishers.',
        )

    def _step(self) -> None:
        frame = self.core.step(self._now_ns())
        self._warn_rejections()
        if frame is None:
            return
        self.frame_publisher.publish(sensor_frame_bytes(frame))
        status = sensor_status_message(frame)
        self.status_publisher.publish(status)
        self._processing_ms.append((self._now_ns() - frame.last_arrival_ns) * 1e-6)
        self._frames_since_diagnostics += 1
        self._last_status = status

    def _warn_rejections(self) -> None:
        for rejection in self.core.drain_rejections():
            self._warn(
                rejection.camera,
                rejection.reason,
                f'camera {rejection.camera}: dropped input ({rejection.reason}): '
                f'{rejection.detail}',
            )

    def _warn(self, source: str, reason: str, text: str) -> None:
        """Log one warning per (source, reason) per warning period."""
        now = self._steady.now().nanoseconds
        last = self._last_warned.get((source, reason))
        if last is None or now - last >= self._warning_period_ns:
            self._last_warned[(source, reason)] = now
            self.get_logger().warning(text)

    def _publish_diagnostics(self) -> None:
        sync = self.core.synchronizer
        frames, self._frames_since_diagnostics = self._frames_since_diagnostics, 0
        processing, self._processing_ms = self._processing_ms, []
        counters = sync.counters
        node_level = OK if frames else ERROR
        statuses = [
            diagnostic_status(
                'sensor_sync_node: frames',
                'vla_ros',
                node_level,
                f'{frames / DIAGNOSTICS_PERIOD_S:.1f} frames/s' if frames else 'no frames',
                {
                    'rate_hz': frames / DIAGNOSTICS_PERIOD_S,
                    'frames_complete': counters.frames_complete,
                    'frames_at_deadline': counters.frames_at_deadline,
                    'matcher_resets': counters.resets,
                    'epoch': sync.epoch,
                    'odometry_resets': self.core.odometry.resets,
                    'odometry_out_of_order': self.core.odometry.out_of_order,
                    **_summary('processing_ms', processing),
                },
            )
        ]
        last_status = {c.name: c for c in self._last_status.cameras} if self._last_status else {}
        for name in self.rig.names:
            camera = counters.cameras[name]
            status = last_status.get(name)
            health = Health(status.health) if status is not None else Health.MISSING
            rejected = self.core.rejections.by_camera[name]
            rate_hz = (camera.accepted - self._accepted_before[name]) / DIAGNOSTICS_PERIOD_S
            self._accepted_before[name] = camera.accepted
            delays, self._arrival_delays_ms[name] = self._arrival_delays_ms[name], []
            statuses.append(
                diagnostic_status(
                    f'sensor_sync_node: camera {name}',
                    name,
                    OK if health == Health.OK else WARN,
                    health.name.lower(),
                    {
                        'health': health.name,
                        'rate_hz': rate_hz,
                        **_summary('arrival_delay_ms', delays),
                        'skew_ms': status.skew_s * 1e3 if status else float('nan'),
                        'accepted': camera.accepted,
                        'frames_not_ok': camera.not_ok,
                        'out_of_order': camera.out_of_order,
                        'late': camera.late,
                        'queue_overflow': camera.overflow,
                        'rejected': sum(rejected.values()),
                        **{
                            f'rejected_{reason}': count
                            for reason, count in sorted(rejected.items())
                        },
                    },
                )
            )
        self.diagnostics_publisher.publish(
            diagnostic_array(self.get_clock().now().to_msg(), statuses)
        )


def main(args: list[str] | None = None) -> None:
    """Run sensor_sync_node until shut down."""
    run_node(SensorSyncNode, 'sensor_sync_node', args, event_driven=True)


if __name__ == '__main__':
    main()
