"""message_filters' ApproximateTimeSynchronizer beside the sensor-sync core, on the same inputs.

The baseline is the policy ROS users reach for, with the settings Autoware and Isaac ROS use:
a queue of 10 per topic (Autoware's traffic_light_fine_detector, `ApproximateSyncPolicy(10)`;
Isaac ROS nvblox, `kQueueSize = 10`) and a slop of 100 ms (Autoware's tensorrt_vad matches its
cameras within 100 ms; the C++ policy those two use has no slop of its own, the Python one needs
one). Both synchronisers get the same recorded camera messages (a committed replay bag, looped
with its stamps moved on) in the same order and on the same arrival clock, the log time: the core
through `OfflineSync`, as the node would step it, message_filters through `SimpleFilter` inputs,
as its `Subscriber`s would call it. Each runs under four conditions: as recorded, one camera
stopping a third of the way in, one camera's clock 40 ms ahead, and stamps jumping back (the
recording looped, as `ros2 bag play --loop` would). Latency is a frame's emission on the arrival
clock minus the newest true capture stamp among its images; with instant transport it is the
time the synchroniser holds a frame.
"""

import copy
from dataclasses import dataclass
from pathlib import Path

from rclpy.serialization import deserialize_message
from rosbags.rosbag2 import Reader

from vla_perception.offline_sync import OfflineSync
from vla_perception.rig import RigConfig
from vla_perception.sensor_sync import SensorSyncCore
from vla_perception.sensor_sync_node import PARAMETERS, sync_config
from vla_perception.synchronizer import NS_PER_S, stamp_to_ns, to_ns
from vla_ros.install_paths import vla_ros_file
from vla_ros.parameters import parameter_defaults
from vla_ros.stamps import to_time
from vla_tools.bench_harness import percentile
from vla_tools.replay_command import message_class

MF_QUEUE_SIZE = 10
MF_SLOP_S = 0.1
CLOCK_OFFSET_S = 0.040
FAULTS = ('none', 'camera_stops', 'clock_offset', 'stamps_jump_back')
FAULTY_CAMERA = {'camera_stops': 'front_left', 'clock_offset': 'back'}
CLOCK_STEP_NS = 1_000_000  # the core's timer is stepped on a 1 ms grid of the arrival clock
RECORDING = 'replay_regression/inputs/nominal'


@dataclass(frozen=True)
class Arrival:
    """One recorded message: when it arrives, its true capture stamp, and the message."""

    topic: str
    arrival_ns: int
    capture_ns: int  # the stamp as recorded, before a fault changed the message's stamp
    message: object


@dataclass
class SyncOutcome:
    """What one synchroniser emitted under one condition."""

    synchroniser: str
    fault: str
    frames: int
    complete_frames: int
    frames_after_fault: int  # emitted after the fault began (all frames: 'none')
    resets: int  # epochs begun (consumers told to reset temporal state); message_filters: none
    latency_p50_ms: float
    latency_p99_ms: float
    stamp_error_p99_ms: float  # |frame stamp - the newest true capture among its images|


def read_recording(bag: Path, rig: RigConfig, odometry_topic: str) -> list[Arrival]:
    """Return the rig's camera, camera_info and odometry messages of a bag as rclpy messages."""
    topics = {*(c.image_topic for c in rig.cameras), *(c.info_topic for c in rig.cameras)}
    topics.add(odometry_topic)
    arrivals = []
    with Reader(bag) as reader:
        connections = [c for c in reader.connections if c.topic in topics]
        for connection, log_ns, raw in reader.messages(connections=connections):
            message = deserialize_message(bytes(raw), message_class(connection.msgtype))
            arrivals.append(Arrival(connection.topic, log_ns, stamp_of(message), message))
    return arrivals


def stamp_of(message: object) -> int:
    """Return a message's header stamp in nanoseconds (0 for a message without one)."""
    header = getattr(message, 'header', None)
    return stamp_to_ns(header.stamp) if header is not None else 0


def moved(arrival: Arrival, arrival_shift_ns: int, stamp_shift_ns: int) -> Arrival:
    """Return a copy that arrives and is stamped later (or earlier) by the given amounts."""
    message = copy.deepcopy(arrival.message)
    if hasattr(message, 'header'):
        message.header.stamp = to_time(stamp_of(message) + stamp_shift_ns)
    return Arrival(
        arrival.topic,
        arrival.arrival_ns + arrival_shift_ns,
        arrival.capture_ns + arrival_shift_ns,
        message,
    )


def looped(recording: list[Arrival], loops: int) -> list[Arrival]:
    """Return the recording played `loops` times back to back, time moving on each loop."""
    span_ns = recording[-1].arrival_ns - recording[0].arrival_ns + to_ns(0.1)
    return [moved(a, k * span_ns, k * span_ns) for k in range(loops) for a in recording]


def with_fault(inputs: list[Arrival], fault: str, image_topics: dict[str, str]) -> list[Arrival]:
    """Return the inputs under one condition; the fault starts a third of the way in."""
    start_ns = inputs[0].arrival_ns + (inputs[-1].arrival_ns - inputs[0].arrival_ns) // 3
    camera = FAULTY_CAMERA.get(fault)
    if fault == 'camera_stops':
        return [
            a
            for a in inputs
            if not (image_topics.get(a.topic) == camera and a.arrival_ns >= start_ns)
        ]
    if fault == 'clock_offset':
        offset = to_ns(CLOCK_OFFSET_S)
        return [moved(a, 0, offset) if image_topics.get(a.topic) == camera else a for a in inputs]
    if fault == 'stamps_jump_back':
        # Stamps restart from the beginning while the arrival clock goes on (a looped bag).
        back_ns = start_ns - inputs[0].arrival_ns
        return [moved(a, 0, -back_ns) if a.arrival_ns >= start_ns else a for a in inputs]
    return inputs


def fault_start_ns(inputs: list[Arrival], fault: str) -> int:
    """Return when the fault begins on the arrival clock (the first arrival for 'none')."""
    if fault == 'none':
        return inputs[0].arrival_ns
    return inputs[0].arrival_ns + (inputs[-1].arrival_ns - inputs[0].arrival_ns) // 3


def run_core(inputs: list[Arrival], rig: RigConfig) -> list[tuple]:
    """Feed the sensor-sync core as the node would.

    Return per frame: emitted at, stamp, complete, [(camera, image stamp)], epoch.
    """
    params = parameter_defaults(PARAMETERS)
    sync = OfflineSync(SensorSyncCore(rig, sync_config(rig, params)), params['odometry_topic'])
    emitted = []

    def collect(frames: list, now_ns: int) -> None:
        for frame in frames:
            stamps = [(c.spec.name, c.stamp_ns) for c in frame.cameras if c.stamp_ns]
            emitted.append((now_ns, frame.stamp_ns, frame.complete, stamps, frame.epoch))

    clock_ns = inputs[0].arrival_ns
    for arrival in inputs:
        while clock_ns + CLOCK_STEP_NS < arrival.arrival_ns:
            clock_ns += CLOCK_STEP_NS
            collect(sync.feed('', None, clock_ns), clock_ns)  # the timer alone
        clock_ns = arrival.arrival_ns
        collect(sync.feed(arrival.topic, arrival.message, clock_ns), clock_ns)
    end_ns = clock_ns + to_ns(1.0)
    while clock_ns < end_ns:
        clock_ns += CLOCK_STEP_NS
        collect(sync.feed('', None, clock_ns), clock_ns)
    return emitted


def run_message_filters(inputs: list[Arrival], rig: RigConfig) -> list[tuple]:
    """Feed ApproximateTimeSynchronizer the camera images; return what it emitted, as run_core."""
    from message_filters import ApproximateTimeSynchronizer, SimpleFilter

    names = [camera.name for camera in rig.cameras]
    topics = {camera.image_topic: index for index, camera in enumerate(rig.cameras)}
    inputs_by_camera = [SimpleFilter() for _ in names]
    synchroniser = ApproximateTimeSynchronizer(inputs_by_camera, MF_QUEUE_SIZE, MF_SLOP_S)
    emitted = []
    now = [0]

    def on_set(*images: object) -> None:
        stamps = [stamp_of(image) for image in images]
        emitted.append((now[0], max(stamps), True, list(zip(names, stamps, strict=True)), 0))

    synchroniser.registerCallback(on_set)
    for arrival in inputs:
        if arrival.topic in topics:
            now[0] = arrival.arrival_ns
            inputs_by_camera[topics[arrival.topic]].signalMessage(arrival.message)
    return emitted


def outcome(
    synchroniser: str,
    fault: str,
    emitted: list[tuple],
    inputs: list[Arrival],
    image_topics: dict[str, str],
) -> SyncOutcome:
    """Summarise emitted frames: latency from the newest true capture among their images.

    A stamp can come twice (stamps that jumped back): an image is the latest arrival with its
    camera and stamp before the frame was emitted.
    """
    arrivals: dict[tuple[str, int], list[tuple[int, int]]] = {}
    for a in inputs:
        if a.topic in image_topics:
            key = (image_topics[a.topic], stamp_of(a.message))
            arrivals.setdefault(key, []).append((a.arrival_ns, a.capture_ns))

    def capture_ns(key: tuple[str, int], emitted_ns: int) -> int:
        return max(c for arrived, c in arrivals[key] if arrived <= emitted_ns)

    latencies, errors = [], []
    for emitted_ns, stamp_ns, _, stamps, _ in emitted:
        captures = {key: capture_ns(key, emitted_ns) for key in stamps}
        newest_ns = max(captures.values())
        latencies.append((emitted_ns - newest_ns) / 1e6)
        errors.append(abs(stamp_ns - newest_ns) / 1e6)
    start_ns = fault_start_ns(inputs, fault)

    return SyncOutcome(
        synchroniser=synchroniser,
        fault=fault,
        frames=len(emitted),
        complete_frames=sum(complete for _, _, complete, *_ in emitted),
        resets=len({epoch for *_, epoch in emitted}) - 1 if emitted else 0,
        frames_after_fault=sum(emitted_ns >= start_ns for emitted_ns, *_ in emitted),
        latency_p50_ms=percentile(latencies, 50, 1),
        latency_p99_ms=percentile(latencies, 99, 1),
        stamp_error_p99_ms=percentile(errors, 99, 1),
    )


SYNCHRONISERS = {'sensor_sync core': run_core, 'message_filters': run_message_filters}


def compare(loops: int = 5) -> tuple[list[SyncOutcome], dict[str, object]]:
    """Run both synchronisers under every condition; return the outcomes and the input facts."""
    rig = RigConfig.from_file(vla_ros_file('replay_regression/rig.yaml'))
    params = parameter_defaults(PARAMETERS)
    recording = read_recording(vla_ros_file(RECORDING), rig, params['odometry_topic'])
    inputs = looped(recording, loops)
    image_topics = {camera.image_topic: camera.name for camera in rig.cameras}
    outcomes = []
    for fault in FAULTS:
        faulty = with_fault(inputs, fault, image_topics)
        for name, run in SYNCHRONISERS.items():
            outcomes.append(outcome(name, fault, run(faulty, rig), faulty, image_topics))
    images = [a for a in inputs if a.topic in image_topics]
    facts = {
        'recording': RECORDING,
        'loops': loops,
        'cameras': len(rig.cameras),
        'image_messages': len(images),
        'duration_s': round((inputs[-1].arrival_ns - inputs[0].arrival_ns) / NS_PER_S, 2),
        'message_filters': {'queue_size': MF_QUEUE_SIZE, 'slop_s': MF_SLOP_S},
    }
    return outcomes, facts
