"""`vla soak`: the closed-loop pipeline over DDS for a long run in lockstep, and what it costs.

A leak or a slowdown shows only after many episodes, so the packaged `sim` bring-up runs as
`vla run sim` runs it (each node its own process, the same parameter files) with the bridge's
`episodes` raised: the world keeps running, seed after seed, for the whole soak. This process
watches from a node of its own on wall time: every plan (its latencies and frame sequence), every
/clock tick (when a frame went out), the monitor's states and the nodes' /diagnostics counters;
every `--sample-s` it reads each node process's resident memory and CPU time from /proc.

Memory growth is the least-squares slope of a node's RSS after the warm-up; latency drift is the
slope of the per-window medians; dropped frames are the frames the model skipped, frames that got
no plan, steps the bridge took on its lockstep timeout, and frames with a camera missing. The
analysis is pure functions over plain lists; the report is JSON, Markdown and two plots.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402 (the backend must be chosen first)
import numpy as np  # noqa: E402
import rclpy  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rclpy.context import Context  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.subscription import MessageInfo  # noqa: E402
from rosgraph_msgs.msg import Clock  # noqa: E402
from vla_msgs.msg import SafetyStatus, VlaPlan  # noqa: E402

from vla_perception.synchronizer import stamp_to_ns  # noqa: E402
from vla_planning.safety_states import SafetyState  # noqa: E402
from vla_ros.install_paths import vla_ros_file  # noqa: E402
from vla_ros.node_main import stop_on_signals  # noqa: E402
from vla_ros.process_stats import (  # noqa: E402
    peak_resident_mb,
    process_cpu_s,
    resident_mb,
)
from vla_ros.qos import RELIABLE  # noqa: E402
from vla_ros.reports import markdown_table, write_json  # noqa: E402
from vla_ros.topics import CLOCK_TOPIC  # noqa: E402
from vla_sim.scenarios import SCENARIOS  # noqa: E402
from vla_tools.bench_harness import machine_line, summary  # noqa: E402
from vla_tools.bringup import BringUp, argument_defaults, load_bringup  # noqa: E402
from vla_tools.bringup_runner import SIGINT_RACE_S, node_command, stop_processes  # noqa: E402

BRINGUP = 'sim'
CLOCK_NODE = 'sim_bridge_node'
EPISODES = 1_000_000  # the bridge's maximum: the world never idles during a soak
STARTUP_TIMEOUT_S = 300.0  # five interpreters import torch and load the model on two cores
WARM_UP_MAX_S, WARM_UP_SHARE = 60.0, 0.1  # the warm-up is the smaller of the two
WINDOW_MAX_S, MIN_WINDOWS = 300.0, 6  # latency windows: 5 min, shorter on runs under 30 min
SPIN_S = 0.05
PROGRESS_PERIOD_S = 1.0
LOG_TAIL_LINES = 20
EXIT_INTERRUPTED = 130  # as a shell reports a command ended by Ctrl-C
S_PER_H = 3600.0


def warm_up_s(duration_s: float) -> float:
    """Return the start-up period left out of the fits: 60 s, or 10 % of a shorter run."""
    return min(WARM_UP_MAX_S, WARM_UP_SHARE * duration_s)


def window_s(duration_s: float) -> float:
    """Return the latency window: 5 min, or a sixth of a run shorter than 30 min."""
    return min(WINDOW_MAX_S, duration_s / MIN_WINDOWS)


def slope_per_hour(times_s: list[float], values: list[float]) -> float:
    """Return the least-squares slope of `values` over time, per hour; NaN from one instant."""
    t = np.asarray(times_s, dtype=float)
    v = np.asarray(values, dtype=float)
    if len(t) < 2 or np.ptp(t) == 0.0:
        return math.nan
    centred = t - t.mean()
    return float((centred * (v - v.mean())).sum() / (centred**2).sum() * S_PER_H)


@dataclass(frozen=True)
class LatencyWindow:
    """Latency figures of the plans received in one window of the run."""

    start_s: float
    end_s: float
    plans: int
    p50_ms: float
    p99_ms: float
    max_ms: float


def latency_windows(
    times_s: list[float], latencies_ms: list[float], start_s: float, end_s: float, width_s: float
) -> list[LatencyWindow]:
    """Split the latencies received in [start_s, end_s] into consecutive windows of `width_s`.

    The last window ends at `end_s` (it may be shorter); windows without a plan are left out.
    """
    if width_s <= 0.0:
        return []
    count = max(1, math.ceil((end_s - start_s) / width_s - 1e-9))  # not one more for rounding
    groups: dict[int, list[float]] = defaultdict(list)
    for t, latency in zip(times_s, latencies_ms, strict=True):
        if start_s <= t <= end_s and math.isfinite(latency):
            groups[min(int((t - start_s) // width_s), count - 1)].append(latency)
    return [
        LatencyWindow(
            start_s + index * width_s,
            min(end_s, start_s + (index + 1) * width_s),
            len(values),
            *summary(values, None, ('p50', 'p99', 'max')).values(),
        )
        for index, values in sorted(groups.items())
    ]


def drift_per_hour(windows: list[LatencyWindow]) -> float:
    """Return the least-squares slope of the windows' medians over their mid-times, ms per hour."""
    return slope_per_hour(
        [(w.start_s + w.end_s) / 2 for w in windows], [w.p50_ms for w in windows]
    )


@dataclass(frozen=True)
class MemoryTrend:
    """One process's resident memory over the soak, MiB."""

    start_mb: float  # the first sample after the warm-up
    end_mb: float
    peak_mb: float  # the largest resident memory of the process's life (VmHWM)
    growth_mb_per_h: float  # least-squares slope over the samples after the warm-up


def memory_trend(
    times_s: list[float], rss_mb: list[float], peak_mb: float, warm_up: float
) -> MemoryTrend:
    """Fit the samples taken after `warm_up` (every sample if none is that late; NaN if none)."""
    pairs = [(t, m) for t, m in zip(times_s, rss_mb, strict=True) if t >= warm_up]
    pairs = pairs or list(zip(times_s, rss_mb, strict=True))
    if not pairs:
        return MemoryTrend(math.nan, math.nan, peak_mb, math.nan)
    times, values = [t for t, _ in pairs], [m for _, m in pairs]
    return MemoryTrend(values[0], values[-1], peak_mb, slope_per_hour(times, values))


def cpu_percent(times_s: list[float], cpu_s: list[float], warm_up: float) -> float:
    """Return a process's CPU use after the warm-up, % of one core."""
    pairs = [(t, c) for t, c in zip(times_s, cpu_s, strict=True) if t >= warm_up]
    if len(pairs) < 2 or pairs[-1][0] == pairs[0][0]:
        return math.nan
    return 100.0 * (pairs[-1][1] - pairs[0][1]) / (pairs[-1][0] - pairs[0][0])


def latency_summary(
    times_s: list[float], latencies_ms: list[float], warm_up: float, duration_s: float
) -> dict[str, object]:
    """Return p50/p99/max after the warm-up, the windows and the drift of their medians."""
    values = [
        v for t, v in zip(times_s, latencies_ms, strict=True) if t >= warm_up and math.isfinite(v)
    ]
    windows = latency_windows(times_s, latencies_ms, warm_up, duration_s, window_s(duration_s))
    return {
        'plans': len(values),
        **summary(values, None, ('p50', 'p99', 'max'), '{}_ms'),
        'drift_ms_per_h': drift_per_hour(windows),
        'windows': [asdict(w) for w in windows],
    }


@dataclass
class ProcessSamples:
    """A node process's samples: seconds since the soak began, RSS MiB, CPU seconds so far."""

    pid: int
    times_s: list[float] = field(default_factory=list)
    rss_mb: list[float] = field(default_factory=list)
    cpu_s: list[float] = field(default_factory=list)
    peak_mb: float = math.nan

    def sample(self, t_s: float) -> None:
        """Read the process's memory and CPU time now (OSError or ValueError once it exited)."""
        rss, cpu, peak = resident_mb(self.pid), process_cpu_s(self.pid), peak_resident_mb(self.pid)
        self.times_s.append(t_s)
        self.rss_mb.append(rss)
        self.cpu_s.append(cpu)
        self.peak_mb = peak


class SoakObserver:
    """What the soak sees over DDS, timed on this process's wall clock (`now_s`)."""

    def __init__(self, node: Node, now_s: Callable[[], float]) -> None:
        self.now_s = now_s
        self.plan_times_s: list[float] = []
        self.input_to_output_ms: list[float] = []  # as the inference node reports it
        self.frame_to_plan_ms: list[float] = []  # the frame's /clock sent -> its plan received
        self.stages_ms: list[float] = []  # preprocess + inference + postprocess
        self.sequence_gaps = 0  # frames missing between consecutive plans of one sync epoch
        self.safety_states: Counter[str] = Counter()
        self.diagnostics: dict[str, dict[str, str]] = {}  # the latest values per status name
        self.first_tick_ns: int | None = None
        self.last_tick_ns: int | None = None
        self._unplanned: dict[int, int] = {}  # tick stamp -> when it was sent, until its plan
        self._last_sequence: tuple[int, int] | None = None
        node.create_subscription(VlaPlan, '/vla/plan', self._on_plan, RELIABLE)
        node.create_subscription(Clock, CLOCK_TOPIC, self._on_clock, RELIABLE)
        node.create_subscription(SafetyStatus, '/vla/safety_status', self._on_safety, RELIABLE)
        node.create_subscription(DiagnosticArray, '/diagnostics', self._on_diagnostics, RELIABLE)

    def _on_clock(self, message: Clock, info: MessageInfo) -> None:
        stamp = stamp_to_ns(message.clock)
        self._unplanned[stamp] = info['source_timestamp']
        self.first_tick_ns = stamp if self.first_tick_ns is None else self.first_tick_ns
        self.last_tick_ns = stamp

    def _on_plan(self, message: VlaPlan, info: MessageInfo) -> None:
        sent_ns = self._unplanned.pop(stamp_to_ns(message.header.stamp), None)
        self.plan_times_s.append(self.now_s())
        self.input_to_output_ms.append(message.input_to_output_ms)
        self.frame_to_plan_ms.append(
            math.nan if sent_ns is None else (info['received_timestamp'] - sent_ns) / 1e6
        )
        self.stages_ms.append(
            message.preprocess_ms + message.inference_ms + message.postprocess_ms
        )
        key = (message.frame_epoch, message.frame_sequence)
        if self._last_sequence is not None and key[0] == self._last_sequence[0]:
            self.sequence_gaps += max(0, key[1] - self._last_sequence[1] - 1)
        self._last_sequence = key

    def _on_safety(self, message: SafetyStatus) -> None:
        self.safety_states[SafetyState(message.state).name] += 1

    def _on_diagnostics(self, message: DiagnosticArray) -> None:
        for status in message.status:
            self.diagnostics[status.name] = {pair.key: pair.value for pair in status.values}

    def counter(self, status: str, key: str) -> int:
        """Return a node's diagnostic counter as last published (0 before any)."""
        return int(self.diagnostics.get(status, {}).get(key, 0))

    def frames_without_plan(self) -> int:
        """Return the frames sent whose plan never arrived (the newest may still be planned)."""
        return sum(1 for stamp in self._unplanned if stamp != self.last_tick_ns)

    def since_first_plan(self) -> list[float]:
        """Return the plans' arrival times in seconds since the first plan: the soak's clock."""
        return [t - self.plan_times_s[0] for t in self.plan_times_s]

    def simulated_s(self) -> float:
        """Return the simulated time between the first and the last tick seen."""
        if self.first_tick_ns is None:
            return 0.0
        return (self.last_tick_ns - self.first_tick_ns) / 1e9


def dropped_frames(observer: SoakObserver, cameras: list[str]) -> dict[str, object]:
    """Return the ways a frame of the soak went unplanned or incomplete, from diagnostics."""
    sync = 'sensor_sync_node: frames'
    return {
        'skipped_by_model': observer.counter('vla_inference_node: model', 'frames_skipped'),
        'plan_sequence_gaps': observer.sequence_gaps,
        'frames_without_plan': observer.frames_without_plan(),
        'lockstep_timeouts': observer.counter('sim_bridge_node: simulation', 'timeouts'),
        'stale_commands': observer.counter('sim_bridge_node: simulation', 'commands_stale'),
        'frames_with_camera_missing': observer.counter(sync, 'frames_at_deadline'),
        'frames_complete': observer.counter(sync, 'frames_complete'),
        'camera_not_ok': {
            camera: observer.counter(f'sensor_sync_node: camera {camera}', 'frames_not_ok')
            for camera in cameras
        },
    }


def _cameras(observer: SoakObserver) -> list[str]:
    prefix = 'sensor_sync_node: camera '
    return sorted(name.removeprefix(prefix) for name in observer.diagnostics if prefix in name)


def soak_summary(
    observer: SoakObserver,
    samples: dict[str, ProcessSamples],
    duration_s: float,
    settings: dict[str, object],
    outcome: str,
) -> dict[str, object]:
    """Return the soak's figures: per node memory and CPU, latency, dropped frames, the sim."""
    warm_up = warm_up_s(duration_s)
    nodes = {}
    for name, series in samples.items():
        trend = memory_trend(series.times_s, series.rss_mb, series.peak_mb, warm_up)
        nodes[name] = {
            'pid': series.pid,
            'rss_start_mb': trend.start_mb,
            'rss_end_mb': trend.end_mb,
            'rss_peak_mb': trend.peak_mb,
            'rss_growth_mb_per_h': trend.growth_mb_per_h,
            'cpu_percent': cpu_percent(series.times_s, series.cpu_s, warm_up),
        }
    times = observer.since_first_plan()
    steps = observer.counter('sim_bridge_node: simulation', 'steps')
    return {
        **settings,
        'outcome': outcome,
        'duration_s': duration_s,
        'warm_up_s': warm_up,
        'window_s': window_s(duration_s),
        'nodes': nodes,
        'latency': {
            'input_to_output_ms': latency_summary(
                times, observer.input_to_output_ms, warm_up, duration_s
            ),
            'frame_to_plan_ms': latency_summary(
                times, observer.frame_to_plan_ms, warm_up, duration_s
            ),
            'model_stages_ms': latency_summary(times, observer.stages_ms, warm_up, duration_s),
        },
        'dropped': dropped_frames(observer, _cameras(observer)),
        'sim': {
            'steps': steps,
            'steps_per_s': steps / duration_s if duration_s > 0 else math.nan,
            'simulated_s': observer.simulated_s(),
            'episodes': observer.counter('sim_bridge_node: simulation', 'episode'),
            'plans_received': len(times),
        },
        'safety_states': dict(observer.safety_states),
        'samples': {
            name: {'t_s': s.times_s, 'rss_mb': s.rss_mb, 'cpu_s': s.cpu_s}
            for name, s in samples.items()
        },
    }


def _plot_memory(summary: dict, path: Path) -> None:
    """RSS against time, one panel per node (each its own scale, so that growth shows)."""
    names = list(summary['samples'])
    fig, axes = plt.subplots(len(names), 1, figsize=(9, 1.7 * len(names)), sharex=True)
    for axis, name in zip(axes, names, strict=True):
        series, growth = summary['samples'][name], summary['nodes'][name]['rss_growth_mb_per_h']
        axis.plot(np.asarray(series['t_s']) / 60, series['rss_mb'], lw=1)
        axis.axvspan(0, summary['warm_up_s'] / 60, color='grey', alpha=0.2)
        axis.set_ylabel('RSS MiB')
        axis.set_title(f'{name}: {growth:+.2f} MiB/h after the warm-up (grey)', fontsize=9)
    axes[-1].set_xlabel('minutes since the first plan')
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _plot_latency(observer: SoakObserver, summary: dict, path: Path) -> None:
    """Each plan's wall-time latencies, with the windows' p50 (solid) and p99 (dashed)."""
    minutes = np.asarray(observer.since_first_plan()) / 60
    panels = (
        ('frame_to_plan_ms', observer.frame_to_plan_ms),
        ('model_stages_ms', observer.stages_ms),
    )
    fig, axes = plt.subplots(len(panels), 1, figsize=(9, 2.8 * len(panels)), sharex=True)
    for axis, (measure, values) in zip(axes, panels, strict=True):
        latency = summary['latency'][measure]
        axis.plot(minutes, values, '.', ms=2, alpha=0.4)
        for window in latency['windows']:
            span = [window['start_s'] / 60, window['end_s'] / 60]
            axis.plot(span, [window['p50_ms']] * 2, '-', color='tab:red')
            axis.plot(span, [window['p99_ms']] * 2, '--', color='tab:red')
        axis.axvspan(0, summary['warm_up_s'] / 60, color='grey', alpha=0.2)
        axis.set_ylabel('ms')
        axis.set_title(
            f'{measure}: window p50 (solid), p99 (dashed); drift of p50 '
            f'{latency["drift_ms_per_h"]:+.2f} ms/h',
            fontsize=9,
        )
    axes[-1].set_xlabel('minutes since the first plan')
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _number(value: float, digits: int = 1) -> str:
    return f'{value:.{digits}f}' if math.isfinite(value) else '-'


def _finite_or_lowest(value: float) -> float:
    return value if math.isfinite(value) else -math.inf


def report_markdown(summary: dict) -> str:
    """Return the soak report as Markdown: tables of every figure, and the plots."""
    dropped, sim = summary['dropped'], summary['sim']
    lines = [
        f'# Soak: {summary["scenario"]} from seed {summary["seed"]}, '
        f'{summary["duration_s"] / 60:.1f} min in lockstep',
        '',
        f'Outcome: {summary["outcome"]}. Started {summary["started"]} on {summary["machine"]}; '
        f'warm-up {summary["warm_up_s"]:.0f} s, latency windows of {summary["window_s"]:.0f} s, '
        f'memory and CPU sampled every {summary["sample_s"]:g} s.',
        '',
        '## Memory and CPU per node process',
        '',
        markdown_table(
            (
                'node',
                'RSS after warm-up MiB',
                'RSS at end MiB',
                'peak MiB',
                'growth MiB/h',
                'CPU %',
            ),
            (
                (
                    name,
                    _number(node['rss_start_mb']),
                    _number(node['rss_end_mb']),
                    _number(node['rss_peak_mb']),
                    _number(node['rss_growth_mb_per_h'], 2),
                    _number(node['cpu_percent']),
                )
                for name, node in summary['nodes'].items()
            ),
        ),
        '',
        '![RSS per node](rss.png)',
        '',
        '## Latency (after the warm-up)',
        '',
        "frame_to_plan_ms: from the bridge sending a frame's /clock (the frame's last message) "
        "to this process receiving the frame's plan (DDS source and reception timestamps). "
        'model_stages_ms: preprocess + inference + postprocess, as the inference node measured '
        'them. input_to_output_ms: as the node writes it into the plan, on its own clock: sim '
        'time, which in lockstep stands still until the plan is out (0 ms; -100 ms when the '
        'frame is planned before its /clock tick arrives). Drift: the least-squares slope of '
        "the windows' p50 over their mid-times.",
        '',
        markdown_table(
            ('measure', 'plans', 'p50 ms', 'p99 ms', 'max ms', 'drift of window p50 ms/h'),
            (
                (
                    measure,
                    latency['plans'],
                    *(_number(latency[key]) for key in ('p50_ms', 'p99_ms', 'max_ms')),
                    _number(latency['drift_ms_per_h'], 2),
                )
                for measure, latency in summary['latency'].items()
            ),
        ),
        '',
        'Per window, frame_to_plan_ms:',
        '',
        markdown_table(
            ('window s', 'plans', 'p50 ms', 'p99 ms', 'max ms'),
            (
                (
                    f'{window["start_s"]:.0f}-{window["end_s"]:.0f}',
                    window['plans'],
                    *(_number(window[key]) for key in ('p50_ms', 'p99_ms', 'max_ms')),
                )
                for window in summary['latency']['frame_to_plan_ms']['windows']
            ),
        ),
        '',
        '![Latency](latency.png)',
        '',
        '## Dropped frames',
        '',
        markdown_table(
            ('what', 'count'),
            [
                *((key, value) for key, value in dropped.items() if not isinstance(value, dict)),
                *((f'camera {name} not OK', n) for name, n in dropped['camera_not_ok'].items()),
            ],
        ),
        '',
        '## Simulation and safety monitor',
        '',
        f'{sim["steps"]} steps ({sim["steps_per_s"]:.2f} per second of wall time), '
        f'{sim["simulated_s"]:.1f} s simulated over {sim["episodes"]} episode(s), '
        f'{sim["plans_received"]} plans received.',
        '',
        markdown_table(
            ('safety state', 'status messages'), sorted(summary['safety_states'].items())
        ),
        '',
    ]
    return '\n'.join(lines)


def write_report(observer: SoakObserver, summary: dict, directory: Path) -> Path:
    """Write soak.json, the plots and report.md into `directory`; return report.md's path."""
    directory.mkdir(parents=True, exist_ok=True)
    write_json(directory / 'soak.json', summary)
    _plot_memory(summary, directory / 'rss.png')
    _plot_latency(observer, summary, directory / 'latency.png')
    path = directory / 'report.md'
    path.write_text(report_markdown(summary), encoding='utf-8')
    return path


def summary_line(summary: dict, report: Path) -> str:
    """Return the one-line verdict printed at the end."""
    latency, sim, dropped = (
        summary['latency']['frame_to_plan_ms'],
        summary['sim'],
        summary['dropped'],
    )
    growth = max(
        summary['nodes'].items(),
        key=lambda item: _finite_or_lowest(item[1]['rss_growth_mb_per_h']),
    )
    return (
        f'soak: {summary["duration_s"] / 60:.1f} min of {summary["scenario"]} in lockstep '
        f'({summary["outcome"]}): {sim["steps"]} sim steps, {sim["simulated_s"]:.0f} s simulated, '
        f'{sim["plans_received"]} plans; frame-to-plan p50 {_number(latency["p50_ms"])} ms, '
        f'p99 {_number(latency["p99_ms"])} ms, drift {_number(latency["drift_ms_per_h"], 2)} '
        f'ms/h; largest RSS growth {_number(growth[1]["rss_growth_mb_per_h"], 2)} MiB/h '
        f'({growth[0]}); dropped: {dropped["skipped_by_model"]} skipped by the model, '
        f'{dropped["frames_without_plan"]} without a plan, {dropped["lockstep_timeouts"]} '
        f'lockstep timeouts, {dropped["frames_with_camera_missing"]} with a camera missing; '
        f'report in {report}'
    )


def _progress(elapsed_s: float, total_s: float, observer: SoakObserver, rss_mb: float) -> None:
    done = min(1.0, elapsed_s / total_s)
    recent = [v for v in observer.frame_to_plan_ms[-100:] if math.isfinite(v)]
    p50 = _number(float(np.median(recent)) if recent else math.nan, 0)
    print(
        f'\r  soak [{"#" * int(30 * done):<30}] {elapsed_s / 60:5.1f}/{total_s / 60:.1f} min  '
        f'{observer.counter("sim_bridge_node: simulation", "steps")} steps  '
        f'{len(observer.plan_times_s)} plans  p50 {p50} ms  RSS {rss_mb:.0f} MiB ',
        end='',
        file=sys.stderr,
        flush=True,
    )


def _log_tail(path: Path) -> str:
    return '\n'.join(path.read_text(errors='replace').splitlines()[-LOG_TAIL_LINES:])


def start_nodes(
    bringup: BringUp, logs: Path, directory: Path, scenario: str, seed: int
) -> dict[str, subprocess.Popen]:
    """Start the bring-up's nodes as `vla run` does, with its defaults, each logging to a file.

    The clock node (the bridge) runs `scenario` from `seed` for EPISODES episodes, so the world
    never idles; `-p` after the parameter files wins over them.
    """
    values = argument_defaults(bringup)
    processes = {}
    for launch in bringup.nodes:
        command = node_command(launch, values, directory)
        if launch.name == CLOCK_NODE:
            command += ['-p', f'scenario:={scenario}', '-p', f'seed:={seed}']
            command += ['-p', f'episodes:={EPISODES}']
        with open(logs / f'{launch.name}.log', 'w', encoding='utf-8') as log:
            processes[launch.name] = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT
            )
    return processes


class Soak:
    """One soak: the node processes, the observing node, and the samples taken."""

    def __init__(self, duration_s: float, sample_s: float, stop: threading.Event) -> None:
        self.duration_s, self.sample_s, self.stop = duration_s, sample_s, stop
        self.context = Context()
        rclpy.init(context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.node = Node('vla_soak', context=self.context)
        self.executor.add_node(self.node)
        self.observer = SoakObserver(self.node, time.monotonic)
        self.processes: dict[str, subprocess.Popen] = {}
        self.samples: dict[str, ProcessSamples] = {}
        self.died: str | None = None  # the node that exited by itself

    def start(
        self, bringup: BringUp, logs: Path, directory: Path, args: argparse.Namespace
    ) -> None:
        """Start the node processes."""
        self.processes = start_nodes(bringup, logs, directory, args.scenario, args.seed)
        self.samples = {name: ProcessSamples(p.pid) for name, p in self.processes.items()}

    def close(self) -> None:
        """Stop the node processes (SIGINT, then a kill after the grace period) and this node."""
        stop_processes(self.processes, 'vla soak')
        self.node.destroy_node()
        self.executor.shutdown()
        self.context.try_shutdown()

    def _failure(self) -> str | None:
        """Say which node exited by itself, if one did; a Ctrl-C that reached it first did not."""
        for name, process in self.processes.items():
            if process.poll() is not None and not self.stop.wait(SIGINT_RACE_S):
                self.died = name
                return f'{name} exited with code {process.returncode}'
        return None

    def wait_for_first_plan(self) -> str | None:
        """Spin until the first plan arrives; return why the soak cannot begin, if it cannot."""
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not self.observer.plan_times_s:
            if self.stop.is_set():
                return 'interrupted during start-up'
            if time.monotonic() > deadline:
                return f'no plan within {STARTUP_TIMEOUT_S:.0f} s of start-up'
            failure = self._failure()
            if failure:
                return failure
            self.executor.spin_once(timeout_sec=SPIN_S)
        return None

    def _sample(self, t_s: float) -> None:
        for series in self.samples.values():
            with contextlib.suppress(OSError, ValueError):  # it has exited: the poll says so
                series.sample(t_s)

    def run(self) -> tuple[float, str | None]:
        """Observe and sample until the time is up; return the duration and a node's failure."""
        begin = self.observer.plan_times_s[0]
        next_sample = next_progress = elapsed = 0.0
        failure = None
        while elapsed < self.duration_s and not self.stop.is_set() and failure is None:
            if elapsed >= next_sample:
                self._sample(elapsed)
                next_sample += self.sample_s
            if elapsed >= next_progress:
                rss = sum(s.rss_mb[-1] for s in self.samples.values() if s.rss_mb)
                _progress(elapsed, self.duration_s, self.observer, rss)
                next_progress += PROGRESS_PERIOD_S
            self.executor.spin_once(timeout_sec=SPIN_S)
            failure = self._failure()
            elapsed = time.monotonic() - begin
        self._sample(elapsed)
        print(file=sys.stderr)
        return elapsed, failure


def add_soak_arguments(parser: argparse.ArgumentParser) -> None:
    """Add `vla soak`'s arguments."""
    parser.add_argument(
        '--minutes',
        type=float,
        default=30.0,
        help='length of the soak from the first plan, minutes; fractions allowed (default 30)',
    )
    parser.add_argument(
        '--scenario',
        choices=tuple(SCENARIOS),
        default='highway',
        metavar='SCENARIO',
        help='the scenario driven, one seed after another (default highway)',
    )
    parser.add_argument('--seed', type=int, default=0, help='seed of the first episode')
    parser.add_argument(
        '--report',
        type=Path,
        default=Path('report/soak'),
        help='folder for report.md, soak.json, the plots and the node logs (default report/soak)',
    )
    parser.add_argument('--json', type=Path, help='also write the figures to this JSON file')
    parser.add_argument(
        '--sample-s',
        type=float,
        default=5.0,
        help='seconds between samples of memory and CPU (default 5)',
    )


def run_soak(args: argparse.Namespace) -> int:
    """Run the soak and report it; 0 when it ran its time, 1 on a failure, 130 after Ctrl-C."""
    if args.minutes <= 0 or args.sample_s <= 0:
        print('vla soak: --minutes and --sample-s must be positive', file=sys.stderr)
        return 1
    try:
        bringup = load_bringup(BRINGUP)
        argument_defaults(bringup)  # the shipped model's files exist
    except (FileNotFoundError, ValueError) as error:
        print(f'vla soak: {error}', file=sys.stderr)
        return 1
    logs = args.report / 'logs'
    logs.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault(  # the bridge publishes six raw images at once (docs/PERCEPTION.md)
        'FASTDDS_DEFAULT_PROFILES_FILE', str(vla_ros_file('config/fastdds_large_data.xml'))
    )
    settings = {
        'scenario': args.scenario,
        'seed': args.seed,
        'minutes': args.minutes,
        'sample_s': args.sample_s,
        'started': datetime.now(timezone.utc).isoformat(timespec='seconds'),
        'machine': machine_line(),
    }
    stop = stop_on_signals()
    soak = Soak(args.minutes * 60.0, args.sample_s, stop)
    duration_s = 0.0
    with tempfile.TemporaryDirectory(prefix='vla_soak_') as directory:
        try:
            soak.start(bringup, logs, Path(directory), args)
            print(
                f'vla soak: started {", ".join(soak.processes)}; waiting for the first plan '
                f'(node logs in {logs})',
                file=sys.stderr,
                flush=True,
            )
            failure = soak.wait_for_first_plan()
            if failure is None:
                duration_s, failure = soak.run()
        finally:
            soak.close()
    if soak.died is not None:
        print(
            f'vla soak: {failure}; its log ends:\n{_log_tail(logs / f"{soak.died}.log")}',
            file=sys.stderr,
        )
    if not soak.observer.plan_times_s:
        print(f'vla soak: {failure}; nothing to report', file=sys.stderr)
        return EXIT_INTERRUPTED if stop.is_set() else 1
    outcome = failure or ('interrupted' if stop.is_set() else 'completed')
    summary = soak_summary(soak.observer, soak.samples, duration_s, settings, outcome)
    report = write_report(soak.observer, summary, args.report)
    if args.json:
        write_json(args.json, summary)
    print(summary_line(summary, report))
    if failure:
        return 1
    return EXIT_INTERRUPTED if stop.is_set() else 0
