"""`vla replay-test`: the replay regression net (openpilot's process_replay).

Small input bags, recorded from the simulator and committed under `replay_regression/inputs/`,
are replayed through the cores the nodes wrap (vla_tools.offline_replay): sensor sync, inference
with the pinned model, the safety monitor and the tracking controller. What each core published
is reduced to the fields that matter (latencies left out) and compared with the references
committed beside the bags, one file per core, field by field within per-field tolerances. A
mismatch prints the case, topic, message stamp, field, expected and got; `--update` rewrites the
references and prints the same lines as what changed, so an intended change is one reviewed
commit.

The monitor judges the plans recorded in the bags, not the model's, so the sync, monitor and
control references do not depend on the model: a new model changes only `inference.json`, which
names the model it was made with and refuses another one until `--update` (or `--weights`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import shutil
import subprocess
import sys
import tempfile
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from enum import Enum
from fnmatch import fnmatch
from pathlib import Path

import numpy as np
from rosbags.rosbag2 import (
    CompressionFormat,
    CompressionMode,
    Reader,
    ReaderError,
    StoragePlugin,
    Writer,
)
from std_msgs.msg import Header
from tqdm import tqdm
from vla_msgs.msg import Instruction, VlaPlan

from vla_model.artifacts import ArtifactError
from vla_model.bag_cache import BagReadError, deserialized_messages
from vla_model.config import MAP_PRIOR_LAYERS, ModelConfig
from vla_model.driving_labels import PoseTrack, future_trajectory
from vla_model.trajectory_messages import trajectory_arrays
from vla_perception.health import Health
from vla_perception.odometry import yaw_of
from vla_perception.offline_sync import OfflineSync
from vla_perception.rig import RigConfig
from vla_perception.sensor_sync import SensorSyncCore, SyncedFrame
from vla_perception.sensor_sync_node import sync_config
from vla_perception.synchronizer import stamp_to_ns
from vla_planning.safety_monitor import Origin
from vla_planning.safety_rules import Verdict
from vla_planning.safety_states import SafetyState
from vla_planning.vla_inference_node import candidate_message
from vla_ros.bag_types import make_typestore
from vla_ros.bag_writing import MessageBagWriter
from vla_ros.install_paths import vla_ros_file
from vla_ros.qos import RELIABLE
from vla_ros.stamps import to_time
from vla_ros.topics import INSTRUCTION_TOPIC, OBSTACLES_TOPIC, ODOMETRY_TOPIC, map_prior_topic
from vla_tools.offline_replay import OfflinePipeline, Published, ReplayModel
from vla_tools.replay_command import add_model_arguments, pipeline_parameters, replay_model

FORMAT = 1
"""Version of the reference files' layout; a file of another version is refused."""
REFERENCE_DIR = 'replay_regression'
"""The committed inputs and references, relative to the vla_ros package."""
RIG_FILE = 'rig.yaml'
INPUT_DIR = 'inputs'
PLAN_TOPIC = '/vla/plan'
"""Where the input bags carry the plans the monitor judges."""
BACKEND = 'onnxruntime'
"""The inference backend the references are made with (the shipped ONNX export)."""
NODES = ('sensor_sync_node', 'vla_inference_node', 'safety_monitor_node', 'trajectory_output_node')
CASE_KEY = 'vla_ros.replay_case'
"""Bag metadata custom_data: what the input bag covers and how it was made."""
SHOWN = 20
"""Differences printed per core; the rest are counted by field."""
STORED_DIGITS = 7
"""Significant digits a float is stored with (float32 fields carry no more)."""
STORED_RELATIVE = 1e-6
"""Relative error the storage allows on top of a field's tolerance."""
UPDATE = 'vla replay-test --update'
LOGGED_FUTURE = 'logged future'
"""The model id of the recorded plans: the drive the simulator's expert logged next."""

Value = bool | int | float | str | list
Fields = dict[str, Value]


class RegressionInputError(RuntimeError):
    """An input or reference file cannot be used; the message names it and what to do."""


@dataclass(frozen=True)
class Case:
    """One input bag: a simulator episode, the faults put into it, and the plans it carries.

    Times are seconds from the bag's first message. The expert drives; the plans are the drive
    it logged next (`logged_future_plan`), one per frame the sync core makes of the faulty
    inputs, where `bad_plans` does not put a bad one instead.
    """

    name: str
    description: str
    scenario: str
    seed: int
    skip: int  # simulator steps (0.1 s) of the episode before the bag starts
    steps: int  # simulator steps in the bag after its first frame
    camera_gap: tuple[str, float, float] | None = None  # camera, from, to: nothing sent
    odometry_gap: tuple[float, float] | None = None  # from, to: no odometry sent
    bad_plans: tuple[tuple[float, float, str], ...] = ()  # from, to, 'nan' | 'too_fast'

    def drops(self, topic: str, since_s: float, rig: RigConfig) -> bool:
        """Return True if the fault window of this case removes the message."""
        if self.camera_gap is not None:
            camera, start, end = self.camera_gap
            spec = next(spec for spec in rig.cameras if spec.name == camera)
            if topic in (spec.image_topic, spec.info_topic) and start <= since_s < end:
                return True
        if self.odometry_gap is not None and topic == ODOMETRY_TOPIC:
            return self.odometry_gap[0] <= since_s < self.odometry_gap[1]
        return False

    def plan(self, message: object, since_s: float) -> object:
        """Return the plan to record: `message`, or the bad plan this case puts there."""
        for start, end, kind in self.bad_plans:
            if start <= since_s < end:
                points = message.trajectory.points
                if kind == 'nan':
                    points[len(points) // 2].pose.position.x = math.nan
                else:  # too fast: the same path driven twice as fast, so twice as far
                    for point in points:
                        point.pose.position.x *= 2.0
                        point.pose.position.y *= 2.0
                        point.longitudinal_velocity_mps *= 2.0
        return message


CASES = (
    Case('nominal', 'highway, keep the lane; no fault', 'highway', 7, 15, 20),
    Case(
        'camera_dropout',
        'highway; the front camera sends nothing from 0.5 to 1.3 s',
        'highway',
        7,
        15,
        20,
        camera_gap=('front', 0.5, 1.3),
    ),
    Case('cut_in', 'a car cuts in 10 m ahead at 0.5 s', 'cut_in', 0, 15, 25),
    Case(
        'stale_odometry',
        'highway; odometry stops from 0.5 to 1.1 s',
        'highway',
        7,
        15,
        25,
        odometry_gap=(0.5, 1.1),
    ),
    Case(
        'bad_plan',
        'highway; the plan at 0.5 s has a NaN point, those from 1.0 to 1.3 s are twice as fast',
        'highway',
        7,
        15,
        20,
        bad_plans=((0.5, 0.55, 'nan'), (1.0, 1.3, 'too_fast')),
    ),
)


def _stored(value: float) -> float:
    """Return a float as the references store it."""
    return float(f'{value:.{STORED_DIGITS}g}')


def _named(kind: type[Enum], value: int) -> str:
    """Return the name of an enumerated message value (a diff reads it), or the number."""
    try:
        return kind(int(value)).name
    except ValueError:
        return str(int(value))


def _stored_list(values: Iterable[float]) -> list[float]:
    return [_stored(float(value)) for value in values]


def quadrant_means(pixels: np.ndarray) -> list[float]:
    """Mean of each quarter (top left, top right, bottom left, bottom right) per channel.

    A compact image digest: it moves when the content, exposure, channel order, crop or
    orientation of a model-ready image changes.
    """
    if pixels.size == 0:
        return []
    rows, cols = pixels.shape[0] // 2, pixels.shape[1] // 2
    quarters = (
        pixels[:rows, :cols],
        pixels[:rows, cols:],
        pixels[rows:, :cols],
        pixels[rows:, cols:],
    )
    return [
        round(float(value), 2)
        for quarter in quarters
        for value in np.atleast_1d(quarter.mean(axis=(0, 1)))
    ]


def sensor_frame_fields(message: object) -> tuple[int, Fields]:
    """Reduce a sync frame: matching, each camera's health and image, interpolated odometry."""
    fields: Fields = {
        'sequence': int(message.sequence),
        'epoch': int(message.epoch),
        'complete': bool(message.complete),
    }
    for camera in message.cameras:
        status, image = camera.status, camera.image
        pixels = np.frombuffer(bytes(image.data), np.uint8)
        if pixels.size:
            pixels = pixels.reshape(image.height, image.width, -1)
        fields[f'camera.{status.name}.health'] = _named(Health, status.health)
        fields[f'camera.{status.name}.skew_s'] = _stored(status.skew_s)
        fields[f'camera.{status.name}.image'] = quadrant_means(pixels)
    odometry = message.odometry
    pose, twist = odometry.pose.pose, odometry.twist.twist
    fields.update(
        {
            'odometry.health': _named(Health, message.odometry_status.health),
            'odometry.skew_s': _stored(message.odometry_status.skew_s),
            'odometry.x': _stored(pose.position.x),
            'odometry.y': _stored(pose.position.y),
            'odometry.qz': _stored(pose.orientation.z),
            'odometry.qw': _stored(pose.orientation.w),
            'odometry.speed': _stored(twist.linear.x),
            'odometry.yaw_rate': _stored(twist.angular.z),
        }
    )
    return stamp_to_ns(message.header.stamp), fields


def _trajectory_fields(message: object, prefix: str) -> Fields:
    times, poses, speeds = trajectory_arrays(message)
    return {
        f'{prefix}time_s': _stored_list(times),
        f'{prefix}x': _stored_list(poses[:, 0]),
        f'{prefix}y': _stored_list(poses[:, 1]),
        f'{prefix}yaw': _stored_list(poses[:, 2]),
        f'{prefix}speed': _stored_list(speeds),
        f'{prefix}acceleration': _stored_list(p.acceleration_mps2 for p in message.points),
    }


def plan_fields(message: object) -> tuple[int, Fields]:
    """Reduce a plan: the selected trajectory, the scores, confidence and rationale."""
    fields: Fields = {
        'frame_sequence': int(message.frame_sequence),
        'selected_index': int(message.selected_index),
        'candidate_scores': _stored_list(message.candidate_scores),
        'confidence': _stored(message.confidence),
        'rationale_class': int(message.rationale_class),
        'map_prior_used': bool(message.map_prior_used),
        **_trajectory_fields(message.trajectory, 'trajectory.'),
    }
    return stamp_to_ns(message.header.stamp), fields


def neural_map_fields(message: object) -> tuple[int, Fields]:
    """Reduce the neural map to the mean non-drivable occupancy of each quarter."""
    cells = np.asarray(message.data, dtype=np.float64).reshape(message.info.height, -1)
    return stamp_to_ns(message.header.stamp), {'occupancy': quadrant_means(cells)}


def safety_status_fields(message: object) -> tuple[int, Fields]:
    """Reduce a monitor cycle: state, latch, ages, collision figures, every rule's verdict."""
    fields: Fields = {
        'state': _named(SafetyState, message.state),
        'trajectory_origin': _named(Origin, message.trajectory_origin),
        'latched': bool(message.latched),
        'clean_cycles': int(message.clean_cycles),
        'hazard_lights': bool(message.hazard_lights),
        'plan_age_s': _stored(message.plan_age_s),
        'sensor_frame_age_s': _stored(message.sensor_frame_age_s),
        'odometry_age_s': _stored(message.odometry_age_s),
        'obstacles_age_s': _stored(message.obstacles_age_s),
        'time_to_collision_s': _stored(message.time_to_collision_s),
        'lead_distance_m': _stored(message.lead_distance_m),
        'rss_safe_distance_m': _stored(message.rss_safe_distance_m),
    }
    for check in message.checks:
        fields[f'check.{check.rule}.verdict'] = _named(Verdict, check.verdict)
        fields[f'check.{check.rule}.value'] = _stored(check.value)
        fields[f'check.{check.rule}.limit'] = _stored(check.limit)
    return stamp_to_ns(message.header.stamp), fields


def trajectory_fields(message: object) -> tuple[int, Fields]:
    """Reduce the trajectory the monitor published: origin, frame and points."""
    fields: Fields = {
        'origin': _named(Origin, message.origin),
        'frame_id': str(message.header.frame_id),
        **_trajectory_fields(message, ''),
    }
    return stamp_to_ns(message.header.stamp), fields


def control_fields(message: object) -> tuple[int, Fields]:
    """Reduce the tracking controller's command (autoware_control_msgs/Control's values)."""
    lateral, longitudinal = message.lateral, message.longitudinal
    return stamp_to_ns(message.stamp), {
        'steering_tire_angle': _stored(lateral.steering_tire_angle),
        'steering_tire_rotation_rate': _stored(lateral.steering_tire_rotation_rate),
        'velocity': _stored(longitudinal.velocity),
        'acceleration': _stored(longitudinal.acceleration),
        'jerk': _stored(longitudinal.jerk),
    }


@dataclass(frozen=True)
class Core:
    """A core under regression: the topics it publishes and the tolerance of each field.

    `tolerances` maps field patterns (fnmatch) to absolute tolerances of floats, first match
    wins; other values (integers, flags, strings) must be equal.
    """

    name: str
    topics: dict[str, Callable[[object], tuple[int, Fields]]]
    tolerances: dict[str, float]
    uses_model: bool = False

    @property
    def file_name(self) -> str:
        """The core's reference file in the reference folder."""
        return f'{self.name}.json'

    def tolerance(self, name: str) -> float:
        """Return the absolute tolerance of a float field."""
        return next(tol for pattern, tol in self.tolerances.items() if fnmatch(name, pattern))


CORES = (
    Core(
        'sync',
        {'/vla/sensor_frame': sensor_frame_fields},
        {'camera.*.image': 0.5, '*': 1e-6},  # grey levels; s, m, m/s
    ),
    Core(
        'inference',
        {'/vla/plan': plan_fields, '/vla/neural_map': neural_map_fields},
        {'occupancy': 0.5, '*': 1e-3},  # ONNX Runtime differs in the last bits across CPUs
        uses_model=True,
    ),
    Core(
        'monitor',
        {'/vla/safety_status': safety_status_fields, '/vla/trajectory': trajectory_fields},
        {'*': 1e-6},
    ),
    Core('control', {'/vla/control_command': control_fields}, {'*': 1e-6}),
)
CORE_NAMES = tuple(core.name for core in CORES)
EXTRACTORS = {topic: extract for core in CORES for topic, extract in core.topics.items()}


@dataclass(frozen=True)
class Record:
    """One published message reduced to the fields that matter."""

    case: str
    topic: str
    stamp_ns: int
    fields: Fields


@dataclass(frozen=True)
class Difference:
    """One field of one message that is not what the reference says."""

    case: str
    topic: str
    stamp_ns: int
    field: str
    expected: object
    got: object
    occurrence: int = 0  # of the messages with this stamp (a watchdog and a plan cycle at once)

    def __str__(self) -> str:
        """Return the line a reviewer reads: where, which field, expected and got."""
        which = f' (#{self.occurrence + 1})' if self.occurrence else ''
        return (
            f'{self.case} {self.topic} @ {self.stamp_ns / 1e9:.3f} s{which}  {self.field}: '
            f'expected {self.expected}, got {self.got}'
        )


@dataclass
class Reference:
    """A core's reference outputs and what they were made with."""

    core: str
    made_at: str  # the commit the working tree was at
    model: dict[str, str] | None  # the inference core's model; None for the others
    inputs: dict[str, str]  # case -> SHA-256 of its bag
    records: list[Record]


def bag_path(directory: Path, case: Case) -> Path:
    """Return the folder of a case's input bag."""
    return directory / INPUT_DIR / case.name


def bag_digest(directory: Path, case: Case) -> str:
    """Return the SHA-256 of a case's MCAP file; RegressionInputError if the bag is missing."""
    path = bag_path(directory, case) / f'{case.name}.mcap'
    if not path.is_file():
        raise RegressionInputError(
            f'no input bag at {path} (case {case.name}); restore it (git checkout -- '
            f'{bag_path(directory, case)}) or record the inputs again: '
            'vla replay-test --record-inputs'
        )
    return hashlib.sha256(path.read_bytes()).hexdigest()


def model_identity(params: dict[str, object], name: str) -> dict[str, str]:
    """Return what names the model in the inference references: its id and file hashes."""
    return {
        'id': name,
        'weights_sha256': str(params['weights_sha256']),
        'onnx_sha256': str(params['onnx_sha256']),
        'backend': str(params['backend']),
    }


def _not_a_reference(path: Path, reason: str) -> RegressionInputError:
    return RegressionInputError(
        f'{path} is not a reference file ({reason}); restore it from git or regenerate it with: '
        f'{UPDATE}'
    )


def read_reference(path: Path, core: str) -> Reference:
    """Read a reference file; RegressionInputError naming it and the fix when it cannot be used."""
    if not path.is_file():
        raise RegressionInputError(f'no reference file {path}; make it with: {UPDATE}')
    try:
        data = json.loads(path.read_text(encoding='utf-8'))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise _not_a_reference(path, str(error)) from None
    version = data.get('format') if isinstance(data, dict) else None
    if version is not None and version != FORMAT:
        raise RegressionInputError(
            f'{path} has reference format {version}, this vla_ros reads format {FORMAT}: '
            f'regenerate it with: {UPDATE}'
        )
    try:
        if data['core'] != core:
            raise RegressionInputError(
                f'{path} holds the references of core {data["core"]!r}, not {core!r}: restore '
                f'it from git or regenerate it with: {UPDATE}'
            )
        return Reference(
            core,
            data['made_at'],
            data['model'],
            data['inputs'],
            [Record(r['case'], r['topic'], r['stamp_ns'], r['fields']) for r in data['messages']],
        )
    except KeyError as error:
        raise _not_a_reference(path, f'no key {error}') from None
    except TypeError:
        raise _not_a_reference(path, 'another layout') from None


def write_reference(path: Path, reference: Reference) -> None:
    """Write a reference file: JSON with one message per line, so a git diff reads per message."""
    head = {
        'format': FORMAT,
        'core': reference.core,
        'made_at': reference.made_at,
        'model': reference.model,
        'inputs': reference.inputs,
    }
    lines = ['{', *(f'  {json.dumps(key)}: {json.dumps(value)},' for key, value in head.items())]
    messages = [
        f'    {json.dumps(asdict(record), separators=(",", ":"))}' for record in reference.records
    ]
    lines += ['  "messages": [', ',\n'.join(messages), '  ]', '}']
    path.write_text('\n'.join(lines) + '\n', encoding='utf-8')


def check_model(reference: Reference, path: Path, pins: dict[str, object]) -> None:
    """Refuse inference references made with another model than the parameters pin."""
    made = reference.model or {}
    now = {key: str(pins[key]) for key in ('weights_sha256', 'onnx_sha256', 'backend')}
    if all(made.get(key) == value for key, value in now.items()):
        return
    raise RegressionInputError(
        f'{path} was made with model {made.get("id")} (weights sha256 '
        f'{str(made.get("weights_sha256"))[:12]}, onnx {str(made.get("onnx_sha256"))[:12]}, '
        f'{made.get("backend")}), the model now is weights sha256 {now["weights_sha256"][:12]}, '
        f'onnx {now["onnx_sha256"][:12]}, {now["backend"]}: if the new model is intended, '
        f'regenerate the inference references with `{UPDATE}` (only {path.name} changes); or '
        f'pass the model they were made with: --weights W --sha256 {made.get("weights_sha256")} '
        f'--onnx O --onnx-sha256 {made.get("onnx_sha256")}'
    )


def check_inputs(reference: Reference, path: Path, digests: dict[str, str]) -> None:
    """Refuse references made from other input bags than these."""
    differ = sorted(
        case
        for case in {*digests, *reference.inputs}
        if reference.inputs.get(case) != digests.get(case)
    )
    if differ:
        raise RegressionInputError(
            f'{path} was made from other input bags ({", ".join(differ)} differ); after an '
            f'intended change of the inputs regenerate it with: {UPDATE}'
        )


def _records(case: str, published: list[Published]) -> list[Record]:
    records = []
    for output in published:
        extract = EXTRACTORS.get(output.topic)
        if extract is not None:
            stamp_ns, fields = extract(output.message)
            records.append(Record(case, output.topic, stamp_ns, fields))
    return records


def replay(
    directory: Path,
    params: dict[str, dict[str, object]],
    model: ReplayModel | None,
    progress: bool = False,
) -> list[Record]:
    """Replay every input bag through the cores; return what they published, reduced.

    The monitor judges the bags' recorded plans. `model` None leaves inference out.
    """
    rig = RigConfig.from_file(directory / RIG_FILE)
    typestore = make_typestore()
    records: list[Record] = []
    with tqdm(total=len(CASES), unit='bag', disable=not progress, desc='replay') as bar:
        for case in CASES:
            pipeline = OfflinePipeline(rig, params, model, plan_topic=PLAN_TOPIC)
            try:
                with Reader(bag_path(directory, case)) as reader:
                    for topic, message, log_time_ns in deserialized_messages(
                        reader, typestore, pipeline.topics
                    ):
                        records += _records(
                            case.name, pipeline.feed_message(topic, message, log_time_ns)
                        )
                records += _records(case.name, pipeline.finish())
            finally:
                pipeline.close()
            bar.update()
    return records


def _values_differ(expected: Value, got: Value, tolerance: float) -> bool:
    if isinstance(expected, float) and isinstance(got, (float, int)) and not isinstance(got, bool):
        if expected == got or (math.isnan(expected) and math.isnan(got)):
            return False
        bound = tolerance + STORED_RELATIVE * max(abs(expected), abs(got))
        return not abs(expected - got) <= bound
    return type(expected) is not type(got) or expected != got


def _field_differences(
    core: Core, name: str, expected: Value, got: Value
) -> list[tuple[str, object, object]]:
    """Return (field, expected, got) where the values differ; a list names its first index."""
    tolerance = core.tolerance(name)
    if isinstance(expected, list) and isinstance(got, list):
        if len(expected) != len(got):
            return [(f'{name} length', len(expected), len(got))]
        for index, (want, have) in enumerate(zip(expected, got, strict=True)):
            if _values_differ(want, have, tolerance):
                return [(f'{name}[{index}]', want, have)]
        return []
    return [(name, expected, got)] if _values_differ(expected, got, tolerance) else []


def compare(core: Core, expected: list[Record], got: list[Record]) -> list[Difference]:
    """Return every difference of the replayed messages from the references, in stamp order."""

    def keyed(records: list[Record]) -> dict[tuple[str, str, int], list[Record]]:
        table: dict[tuple[str, str, int], list[Record]] = defaultdict(list)
        for record in records:
            if record.topic in core.topics:
                table[record.case, record.topic, record.stamp_ns].append(record)
        return table

    want, have = keyed(expected), keyed(got)
    differences = []
    order = {case.name: index for index, case in enumerate(CASES)}
    for key in sorted(
        {*want, *have}, key=lambda k: (order.get(k[0], len(order)), k[0], k[2], k[1])
    ):
        case, topic, stamp_ns = key
        pairs = list(zip(want.get(key, []), have.get(key, []), strict=False))
        surplus = len(have.get(key, [])) - len(want.get(key, []))
        for occurrence, (old, new) in enumerate(pairs):
            for name in [*old.fields, *(n for n in new.fields if n not in old.fields)]:
                for field_name, expected_value, got_value in _field_differences(
                    core, name, old.fields.get(name, '(absent)'), new.fields.get(name, '(absent)')
                ):
                    differences.append(
                        Difference(
                            case,
                            topic,
                            stamp_ns,
                            field_name,
                            expected_value,
                            got_value,
                            occurrence,
                        )
                    )
        if surplus:
            missing = 'not published' if surplus < 0 else 'published'
            wanted = 'published' if surplus < 0 else 'not published'
            differences.append(
                Difference(case, topic, stamp_ns, '(message)', wanted, missing, len(pairs))
            )
    return differences


def describe(core: Core, path: Path, differences: list[Difference], total: int) -> list[str]:
    """Return the readable report of a core's differences: the first lines, then by field."""
    if not differences:
        return [f'{core.name}: {total} messages match {path}']
    messages = len({(d.case, d.topic, d.stamp_ns, d.occurrence) for d in differences})
    lines = [f'{core.name}: {messages} of {total} messages differ from {path}']
    lines += [f'  {difference}' for difference in differences[:SHOWN]]
    if len(differences) > SHOWN:
        by_field = Counter(_field_pattern(d.field) for d in differences[SHOWN:])
        lines.append(
            f'  ... and {len(differences) - SHOWN} more: '
            + ', '.join(f'{name} ({count})' for name, count in by_field.most_common())
        )
    return lines


def _field_pattern(name: str) -> str:
    """Return a field without its list index, to count differences by field."""
    return name.split('[')[0]


def made_at(directory: Path) -> str:
    """Return the commit the working tree is at, and whether it has uncommitted changes."""
    try:
        commit = subprocess.run(
            ['git', 'rev-parse', 'HEAD'], cwd=directory, capture_output=True, text=True, check=True
        ).stdout.strip()
        changes = subprocess.run(
            ['git', 'status', '--porcelain'],
            cwd=directory,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return 'unknown (not a git checkout)'
    return commit + (' with uncommitted changes' if changes else '')


@dataclass
class Outcome:
    """What a check or an update found, per core: the report lines and whether all matched."""

    lines: list[str] = field(default_factory=list)
    passed: bool = True


def check(
    directory: Path,
    cores: tuple[Core, ...],
    records: list[Record],
    references: dict[str, Reference],
) -> Outcome:
    """Compare the replayed records with each core's references."""
    outcome = Outcome()
    for core in cores:
        path = directory / core.file_name
        got = [r for r in records if r.topic in core.topics]
        differences = compare(core, references[core.name].records, got)
        outcome.lines += describe(core, path, differences, len(got))
        outcome.passed = outcome.passed and not differences
    return outcome


def update(
    directory: Path,
    cores: tuple[Core, ...],
    records: list[Record],
    digests: dict[str, str],
    identity: dict[str, str] | None,
) -> Outcome:
    """Rewrite the references that changed; report what changed (nothing rewritten otherwise)."""
    outcome = Outcome()
    commit = made_at(directory)
    for core in cores:
        path = directory / core.file_name
        got = [r for r in records if r.topic in core.topics]
        model = identity if core.uses_model else None
        try:
            old = read_reference(path, core.name)
        except RegressionInputError as error:
            outcome.lines.append(f'{core.name}: {error}; writing it anew')
        else:
            differences = compare(core, old.records, got)
            if not differences and (old.model, old.inputs) == (model, digests):
                outcome.lines.append(f'{core.name}: {len(got)} messages, unchanged; {path} kept')
                continue
            if old.model != model:
                before, after = (old.model or {}).get('id'), (model or {}).get('id')
                outcome.lines.append(f'{core.name}: made with model {before}, now {after}')
            if old.inputs != digests:
                outcome.lines.append(f'{core.name}: the input bags changed')
            if differences:
                outcome.lines += describe(core, path, differences, len(got))
        write_reference(path, Reference(core.name, commit, model, digests, got))
        outcome.lines.append(f'{core.name}: wrote {path} ({len(got)} messages)')
    return outcome


def _input_order(topic: str, rig: RigConfig) -> int:
    """Within one log time, what a frame's cameras need comes first (odometry, obstacles, map).

    The monitor's first cycle runs on the first frame's plan: with the obstacles of that time
    already in, it judges the plan instead of a missing obstacle source.
    """
    cameras = {topic for spec in rig.cameras for topic in (spec.image_topic, spec.info_topic)}
    return 1 if topic in cameras else 0


def logged_future_plan(
    frame: SyncedFrame, track: PoseTrack, config: ModelConfig, instruction: object
) -> VlaPlan | None:
    """Return the plan a perfect model would give for a frame: the drive the bag logged next.

    The model's own poses and times (config.step_s up to the horizon) in base_link at the
    frame's stamp, as vla_inference_node publishes them; None without 3 s of logged future.
    """
    points = future_trajectory(track, frame.stamp_ns, config)
    if points is None:
        return None
    header = Header(stamp=to_time(frame.stamp_ns), frame_id='base_link')
    times = np.arange(1, config.horizon_steps + 1) * config.step_s
    trajectory = candidate_message(points, times, config.step_s, header)
    return VlaPlan(
        header=header,
        frame_sequence=frame.sequence,
        frame_epoch=frame.epoch,
        trajectory=trajectory,
        candidates=[trajectory],
        candidate_scores=[1.0],
        selected_index=0,
        confidence=1.0,
        rationale_class=-1,
        instruction_id=instruction.id,
        instruction_text=instruction.text,
        model_id=LOGGED_FUTURE,
    )


def compose_input(
    case: Case, source: Path, target: Path, rig: RigConfig, params: dict[str, dict[str, object]]
) -> None:
    """Write a case's input bag from a longer simulator recording: its faults, and plans.

    The pipeline's input topics (no ground truth, expert labels or clock) of `case.steps` steps
    after the first `case.skip` are kept, zstd-compressed in MCAP chunks, less what the case's
    faults drop.
    A plan goes out whenever the sync core emits a frame of those inputs: the logged future
    (`logged_future_plan`, from the whole recording), or the bad plan the case puts there.
    """
    typestore = make_typestore()
    sync = params['sensor_sync_node']
    offline_sync = OfflineSync(SensorSyncCore(rig, sync_config(rig, sync)), sync['odometry_topic'])
    kept = {
        *offline_sync.topics,
        INSTRUCTION_TOPIC,
        OBSTACLES_TOPIC,
        *(map_prior_topic(layer) for layer in MAP_PRIOR_LAYERS),
    }
    odometry = []
    with Reader(source) as reader:
        connections = [c for c in reader.connections if c.topic in kept]
        messages = []
        for index, (connection, log_time_ns, raw) in enumerate(
            reader.messages(connections=connections)
        ):
            if connection.topic == ODOMETRY_TOPIC:
                message = typestore.deserialize_cdr(raw, connection.msgtype)
                pose = message.pose.pose
                stamp_ns = stamp_to_ns(message.header.stamp)
                odometry.append(
                    (stamp_ns, pose.position.x, pose.position.y, yaw_of(pose.orientation))
                )
            order = _input_order(connection.topic, rig)
            messages.append((log_time_ns, order, index, connection, bytes(raw)))
    messages.sort(key=lambda item: item[:3])
    stamps = sorted({item[0] for item in messages})
    if len(stamps) <= case.skip + case.steps:
        raise RegressionInputError(
            f'{source}: the episode ended after {len(stamps)} frames, case {case.name} needs '
            f'{case.skip + case.steps + 1}: give it another seed'
        )
    start_ns, end_ns = stamps[case.skip], stamps[case.skip + case.steps]
    track, config = PoseTrack.from_samples(odometry), ModelConfig()
    instruction = Instruction()
    writer = Writer(target, version=9, storage_plugin=StoragePlugin.MCAP)
    writer.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
    with writer:
        copies = {}
        plans = MessageBagWriter(writer, typestore, {PLAN_TOPIC: RELIABLE})

        def write_plans(frames: list[SyncedFrame], log_time_ns: int) -> None:
            for frame in frames:
                plan = logged_future_plan(frame, track, config, instruction)
                if plan is not None:
                    plan = case.plan(plan, (frame.stamp_ns - start_ns) / 1e9)
                    plans.write(PLAN_TOPIC, plan, log_time_ns)

        try:
            for log_time_ns, _, _, connection, raw in messages:
                if connection.topic == INSTRUCTION_TOPIC:  # latched: a recording started late
                    log_time_ns = max(log_time_ns, start_ns)  # gets it at its start
                since_s = (log_time_ns - start_ns) / 1e9
                if not start_ns <= log_time_ns <= end_ns or case.drops(
                    connection.topic, since_s, rig
                ):
                    continue
                message = typestore.deserialize_cdr(raw, connection.msgtype)
                if connection.topic == INSTRUCTION_TOPIC:
                    instruction = message
                if connection.topic not in copies:
                    copies[connection.topic] = writer.add_connection(
                        connection.topic,
                        connection.msgtype,
                        typestore=typestore,
                        offered_qos_profiles=connection.ext.offered_qos_profiles,
                    )
                writer.write(copies[connection.topic], log_time_ns, raw)
                # The replay takes the frames a message completes at its log time, so the plans
                # of those frames follow it there.
                write_plans(offline_sync.feed(connection.topic, message, log_time_ns), log_time_ns)
            write_plans(offline_sync.finish(), end_ns)
        finally:
            offline_sync.core.close()
        writer.set_custom_data(CASE_KEY, json.dumps({**asdict(case), 'plans': LOGGED_FUTURE}))


def record_inputs(directory: Path, params: dict[str, dict[str, object]], progress: bool) -> None:
    """Record every case's input bag again: the expert drives the simulator (no model)."""
    from vla_sim.recorder import bag_name, record
    from vla_sim.simulation import SimConfig

    rig = RigConfig.from_file(directory / RIG_FILE)
    config = ModelConfig()
    future_steps = math.ceil(config.horizon_steps * config.step_s / SimConfig().step_s) + 1
    with tempfile.TemporaryDirectory() as scratch:
        for case in tqdm(CASES, unit='bag', disable=not progress, desc='record'):
            out = Path(scratch) / case.name
            record(
                case.scenario,
                1,
                out,
                rig_path=directory / RIG_FILE,
                seed_start=case.seed,
                max_steps=case.skip + case.steps + future_steps,
                progress=False,
            )
            target = bag_path(directory, case)
            shutil.rmtree(target, ignore_errors=True)
            target.parent.mkdir(parents=True, exist_ok=True)
            compose_input(case, out / bag_name(case.scenario, case.seed), target, rig, params)


def replay_test(directory: Path, cores: tuple[Core, ...], args: argparse.Namespace) -> Outcome:
    """Check the cores against their references, or (--update, --record-inputs) rewrite them.

    Every refusal (a missing bag, a reference of another format, made from other bags or with
    another model) comes before the slow part, as a RegressionInputError.
    """
    params = pipeline_parameters(args, NODES)
    pins = params['vla_inference_node']
    if args.record_inputs:
        record_inputs(directory, params, args.progress)
    digests = {case.name: bag_digest(directory, case) for case in CASES}
    references = {}
    writing = args.update or args.record_inputs
    if not writing:
        for core in cores:
            path = directory / core.file_name
            references[core.name] = read_reference(path, core.name)
            check_inputs(references[core.name], path, digests)
            if core.uses_model:
                check_model(references[core.name], path, pins)
    model = replay_model(pins) if any(core.uses_model for core in cores) else None
    records = replay(directory, params, model, args.progress)
    if not writing:
        return check(directory, cores, records, references)
    identity = model_identity(pins, model.name) if model is not None else None
    return update(directory, cores, records, digests, identity)


def add_replay_test_arguments(parser: argparse.ArgumentParser) -> None:
    """Add `vla replay-test`'s arguments."""
    parser.add_argument(
        '--update',
        action='store_true',
        help='rewrite the references that changed and print what changed (an intended change)',
    )
    parser.add_argument(
        '--record-inputs',
        action='store_true',
        help='record the input bags again from the simulator, with the model planning, then '
        'rewrite the references',
    )
    parser.add_argument(
        '--cores',
        nargs='+',
        choices=CORE_NAMES,
        default=list(CORE_NAMES),
        help='check only these cores (default: all; without inference the model is not loaded)',
    )
    parser.add_argument(
        '--references',
        type=Path,
        help=f"folder of the input bags and references (default: the package's {REFERENCE_DIR}/)",
    )
    add_model_arguments(parser)
    parser.add_argument('--no-progress', dest='progress', action='store_false')
    parser.set_defaults(backend=BACKEND)


def run_replay_test(args: argparse.Namespace) -> int:
    """Run `vla replay-test`: 0 when every core matches (or was updated), 1 with the reasons."""
    directory = args.references or vla_ros_file(REFERENCE_DIR)
    cores = tuple(core for core in CORES if core.name in args.cores)
    try:
        outcome = replay_test(directory, cores, args)
    except (RegressionInputError, ArtifactError, BagReadError, ReaderError, ValueError) as error:
        print(f'vla replay-test: {error}', file=sys.stderr)
        return 1
    print('\n'.join(outcome.lines))
    return 0 if outcome.passed else 1
