"""`vla replay BAG`: run the pipeline on a recorded drive, offline or live.

Offline (default): the cores in log-time order (vla_tools.offline_replay), deterministic; prints
the safety events and open-loop metrics, and writes the published messages to a new MCAP bag
(`--out`, for Foxglove or `ros2 bag`) and a summary (`--json`).

`--live`: for machines without `ros2 bag play`: the bag's input topics are published over DDS
with /clock, at the recorded pace times `--rate`, for nodes on sim time
(`vla run pipeline use_sim_time:=true`). The pipeline's own outputs in the bag are not replayed.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from collections import Counter
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import numpy as np
from rclpy.qos import QoSProfile
from rosbags.interfaces import Connection, QosDurability
from rosbags.rosbag2 import Reader, ReaderError, StoragePlugin, Writer
from tqdm import tqdm

from vla_model.artifacts import ArtifactError
from vla_model.bag_cache import BagReadError, deserialized_messages
from vla_model.instruction_encoder import InstructionEncoder
from vla_model.shipped import shipped_model
from vla_perception.rig import RigConfig, default_rig_path
from vla_planning.vla_inference_node import load_model, model_id
from vla_ros.bag_types import make_typestore
from vla_ros.bag_writing import MessageBagWriter
from vla_ros.node_main import stop_on_signals
from vla_ros.parameters import parameter_defaults
from vla_ros.qos import LATCHED, RELIABLE
from vla_ros.reports import write_json
from vla_ros.stamps import to_time
from vla_ros.topics import CLOCK_TOPIC, CONTROL_COMMAND_TOPIC
from vla_tools import bench_harness
from vla_tools.bringup import load_bringup, node_parameters
from vla_tools.bringup_runner import NODE_CLASSES
from vla_tools.offline_replay import OUTPUT_TOPICS, OfflinePipeline, Published, ReplayModel

REPLAYED_NODES = ('sensor_sync_node', 'vla_inference_node', 'safety_monitor_node')
LIVE_QUEUE_DEPTH = 20  # a frame's six images and infos at once, with room to spare


def pipeline_parameters(
    args: argparse.Namespace, nodes: tuple[str, ...] = REPLAYED_NODES
) -> dict[str, dict[str, object]]:
    """Return each of `nodes`' parameters as the pipeline bring-up sets them, with the model's.

    The model is the shipped one unless `args.weights` names another (`add_model_arguments`).
    """
    params = {}
    for node in load_bringup('pipeline').nodes:
        if node.name in nodes:
            module = NODE_CLASSES[node.executable].split(':')[0]
            table = importlib.import_module(module).PARAMETERS
            params[node.name] = {**parameter_defaults(table), **node_parameters(node)}
    model = params['vla_inference_node']
    if args.weights is None:
        shipped = shipped_model()
        model.update(
            weights_path=str(shipped.weights_path),
            weights_sha256=shipped.weights_sha256,
            onnx_path=str(shipped.onnx_path),
            onnx_sha256=shipped.onnx_sha256,
        )
    else:
        model.update(
            weights_path=str(args.weights),
            weights_sha256=args.sha256 or '',
            onnx_path=str(args.onnx or ''),
            onnx_sha256=args.onnx_sha256 or '',
        )
    model['backend'] = args.backend
    return params


def replay_model(params: dict[str, object]) -> ReplayModel:
    """Load the model vla_inference_node's parameters name, for the offline pipeline."""
    model, backend = load_model(params)
    name = model_id(model.config, str(params['weights_sha256']))
    return ReplayModel(model.config, backend, name, InstructionEncoder())


def replay_offline(args: argparse.Namespace) -> int:
    """Replay through the cores; print events and metrics; write --out and --json."""
    params = pipeline_parameters(args)
    model = replay_model(params['vla_inference_node'])
    rig = RigConfig.from_file(args.rig or default_rig_path())
    pipeline = OfflinePipeline(rig, params, model)
    typestore = make_typestore()
    published: Counter = Counter()
    received = 0
    with Reader(args.bag) as reader, _output(args.out) as writer:
        sink = (
            MessageBagWriter(writer, typestore, dict.fromkeys(OUTPUT_TOPICS, RELIABLE))
            if writer
            else None
        )
        total = sum(c.msgcount for c in reader.connections if c.topic in pipeline.topics)
        messages = deserialized_messages(reader, typestore, pipeline.topics)
        for topic, message, log_time_ns in tqdm(
            messages, total=total, unit='msg', disable=not args.progress
        ):
            received += 1
            outputs = pipeline.feed_message(topic, message, log_time_ns)
            _write(outputs, published, sink)
        _write(pipeline.finish(), published, sink)
    record = pipeline.record
    latencies = np.array(record.latencies_ms or [np.nan])
    summary = {
        'bag': str(args.bag),
        'model': model.name,
        'backend': model.backend.name,
        'messages_in': received,
        'published': dict(sorted(published.items())),
        'invalid_model_outputs': record.invalid_outputs,
        'refused': dict(record.refused),
        'safety_events': [
            {
                'log_time_ns': e.log_time_ns,
                'state': e.state,
                'origin': e.origin,
                'reasons': e.reasons,
            }
            for e in record.events
        ],
        'open_loop': pipeline.open_loop(),
        'model_latency_ms': bench_harness.summary(latencies),
    }
    for event in record.events:
        print(
            f'{event.log_time_ns / 1e9:14.3f} s  {event.state:<12} {event.origin:<20} '
            f'{event.reasons}'
        )
    metrics = summary['open_loop']
    print(
        f'replayed {received} messages: {published["/vla/plan"]} plans, '
        f'{len(record.events)} safety state changes; open loop over {metrics["frames"]} frames: '
        + (
            f'L2 {metrics["l2_1s_m"]:.2f} / {metrics["l2_2s_m"]:.2f} / '
            f'{metrics["l2_3s_m"]:.2f} m, '
            f'collision at 3 s {metrics["collision_3s_pct"]:.1f} %'
            if metrics['frames']
            else 'no frame has a 3 s logged future'
        )
    )
    if args.out:
        print(f'outputs in {args.out}')
    if args.json:
        write_json(args.json, summary)
    return 0


def _write(outputs: list[Published], published: Counter, sink: MessageBagWriter | None) -> None:
    """Count and write the outputs on OUTPUT_TOPICS (not the sensor frames: images)."""
    for output in outputs:
        if output.topic in OUTPUT_TOPICS:
            published[output.topic] += 1
            if sink is not None:
                sink.write(output.topic, output.message, output.log_time_ns)


def _output(path: Path | None) -> AbstractContextManager[Writer | None]:
    """Open the output bag (MCAP), or nothing without --out."""
    if path is None:
        return nullcontext(None)
    return Writer(path, version=9, storage_plugin=StoragePlugin.MCAP)


def message_class(msgtype: str) -> type:
    """Return the rclpy class of a rosbag2 type name, `pkg/msg/Name`."""
    package, _, name = msgtype.split('/')
    return getattr(importlib.import_module(f'{package}.msg'), name)


def recorded_qos(connection: Connection) -> QoSProfile:
    """Reliable, deep enough for a burst of cameras; transient-local where it was recorded so."""
    latched = any(
        profile.durability == QosDurability.TRANSIENT_LOCAL
        for profile in connection.ext.offered_qos_profiles
    )
    return (
        LATCHED
        if latched
        else QoSProfile(depth=LIVE_QUEUE_DEPTH, reliability=RELIABLE.reliability)
    )


def replay_live(args: argparse.Namespace) -> int:
    """Publish the bag's input topics with /clock at the recorded pace times --rate."""
    import rclpy
    from rclpy.signals import SignalHandlerOptions
    from rosgraph_msgs.msg import Clock

    stop = stop_on_signals()
    skip = {*OUTPUT_TOPICS, CLOCK_TOPIC, CONTROL_COMMAND_TOPIC}
    sent = 0
    with Reader(args.bag) as reader, rclpy.init(signal_handler_options=SignalHandlerOptions.NO):
        node = rclpy.create_node('vla_replay')
        connections = [
            c
            for c in reader.connections
            if c.topic not in skip and (not args.topics or c.topic in args.topics)
        ]
        publishers = {}
        for connection in connections:
            if connection.topic not in publishers:
                publishers[connection.topic] = node.create_publisher(
                    message_class(connection.msgtype), connection.topic, recorded_qos(connection)
                )
        clock = node.create_publisher(Clock, CLOCK_TOPIC, RELIABLE)
        print(
            f'vla replay: publishing {len(publishers)} topics of {args.bag} with /clock',
            flush=True,
        )
        stop.wait(args.discovery_s)
        total = sum(c.msgcount for c in connections)
        start_s, first_ns, clock_ns = time.monotonic(), None, None
        bar = tqdm(total=total, unit='msg', disable=not args.progress)
        for connection, log_time_ns, raw in reader.messages(connections=connections):
            first_ns = log_time_ns if first_ns is None else first_ns
            due_s = start_s + (log_time_ns - first_ns) / 1e9 / args.rate
            if stop.wait(max(0.0, due_s - time.monotonic())):
                break
            if log_time_ns != clock_ns:
                clock.publish(Clock(clock=to_time(log_time_ns)))
                clock_ns = log_time_ns
            publishers[connection.topic].publish(bytes(raw))
            sent += 1
            bar.update()
        bar.close()
        node.destroy_node()
    print(f'vla replay: published {sent} messages' + (' (stopped)' if stop.is_set() else ''))
    return 0


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options that name a model other than the shipped one (`pipeline_parameters`)."""
    parser.add_argument('--weights', type=Path, help='safetensors (default: the shipped model)')
    parser.add_argument('--sha256', help='the SHA-256 the weights must have (with --weights)')
    parser.add_argument('--onnx', type=Path, help='ONNX export of --weights')
    parser.add_argument('--onnx-sha256', help='the SHA-256 the ONNX file must have')


def add_replay_arguments(parser: argparse.ArgumentParser) -> None:
    """Add `vla replay`'s arguments."""
    parser.add_argument('bag', type=Path, help='a rosbag2 bag (MCAP or sqlite3 folder)')
    parser.add_argument('--out', type=Path, help='offline: write the outputs to this new MCAP bag')
    parser.add_argument('--json', type=Path, help='offline: write the summary to this JSON file')
    add_model_arguments(parser)
    parser.add_argument(
        '--backend', default='auto', help='auto, torch, onnxruntime or tensorrt (default auto)'
    )
    parser.add_argument('--rig', type=Path, help='rig file (default: config/rig_surround.yaml)')
    parser.add_argument(
        '--live', action='store_true', help='publish over DDS with /clock instead, for live nodes'
    )
    parser.add_argument('--rate', type=float, default=1.0, help='live: playback speed factor')
    parser.add_argument('--topics', nargs='+', help='live: only these topics (default: inputs)')
    parser.add_argument(
        '--discovery-s', type=float, default=2.0, help='live: wait this long for subscribers'
    )
    parser.add_argument('--no-progress', dest='progress', action='store_false')


def run_replay(args: argparse.Namespace) -> int:
    """Replay; a missing or corrupt bag, a bad model or option exits 1 with one line."""
    if args.rate <= 0 or not np.isfinite(args.rate):
        print('vla replay: --rate must be a positive number', file=sys.stderr)
        return 1
    if not args.bag.exists():
        print(f'vla replay: no bag at {args.bag}', file=sys.stderr)
        return 1
    if args.out is not None and args.out.exists():
        print(f'vla replay: {args.out} exists; give a new path', file=sys.stderr)
        return 1
    try:
        return replay_live(args) if args.live else replay_offline(args)
    except (ArtifactError, BagReadError, FileNotFoundError, ValueError, ReaderError) as error:
        print(f'vla replay: {error}', file=sys.stderr)
        return 1
