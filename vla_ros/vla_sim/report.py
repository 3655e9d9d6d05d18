"""The evaluation report: metrics as JSON and a Markdown table, plots, and GIFs of episodes.

A GIF frame shows every camera view, the BEV ground truth around the ego and, for a model, its
neural map, each with the driver's path drawn on it, and a caption (time, speed, rationale,
safety state), so that a reader sees at a glance what the driver saw, believed and did.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402 (the backend must be chosen first)
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from vla_ros.reports import markdown_table, write_json  # noqa: E402
from vla_sim.bev_ground_truth import BevGrid  # noqa: E402
from vla_sim.evaluation import EpisodeResult, RecordedStep, summary  # noqa: E402


def top_rules(cycles: dict[str, int], count: int = 3) -> str:
    """Name the monitor rules that failed in the most cycles, most first: 'rule 12, rule 3'."""
    ranked = sorted(cycles.items(), key=lambda item: -item[1])[:count]
    return ', '.join(f'{rule} {n}' for rule, n in ranked) or '-'


TABLE_COLUMNS = (
    ('episodes', 'episodes', '{:d}'.format),
    ('collision_rate', 'collision', '{:.0%}'.format),
    ('off_road_rate', 'off-road', '{:.0%}'.format),
    ('instruction_success_rate', 'instruction success', '{:.0%}'.format),
    ('mean_progress_m', 'progress m', '{:.0f}'.format),
    ('mean_speed_mps', 'mean speed m/s', '{:.1f}'.format),
    ('peak_jerk_mps3', 'peak abs jerk m/s^3', '{:.1f}'.format),
    ('peak_lateral_acceleration_mps2', 'peak abs lat. acc. m/s^2', '{:.2f}'.format),
    ('interventions_per_km', 'interventions /km', '{:.2f}'.format),
    ('minimal_risk_stops_per_km', 'MRM stops /km', '{:.2f}'.format),
    ('mean_step_wall_ms', 'wall ms/step', '{:.1f}'.format),
    ('failed_rule_cycles', 'most failed monitor rules (cycles)', top_rules),
)
GIF_STRIDE = 3  # every third 10 Hz step: 3.3 frames per second of driving
GIF_MAX_FRAMES = 70
BEV_PIXELS_PER_CELL = 4


def metrics_table(aggregate: dict, group: str = 'scenario') -> str:
    """Return a Markdown table with one row per scenario (or other `group` of episodes)."""
    header = [group, *(title for _, title, _ in TABLE_COLUMNS)]
    rows = [
        [name, *(fmt(values[key]) for key, _, fmt in TABLE_COLUMNS)]
        for name, values in aggregate.items()
    ]
    return markdown_table(header, rows) + '\n'


def _plot_tracks(results: list[EpisodeResult], path: Path) -> None:
    names = sorted({r.metrics.scenario for r in results})
    fig, axes = plt.subplots(len(names), 1, figsize=(9, 2.6 * len(names)), squeeze=False)
    for axis, name in zip(axes[:, 0], names, strict=False):
        for result in (r for r in results if r.metrics.scenario == name and len(r.track)):
            colour = 'tab:red' if result.metrics.collision else None
            axis.plot(result.track[:, 0], result.track[:, 1], lw=1, color=colour)
        axis.set_title(f'{name}: ego tracks (red: collision)', fontsize=9)
        axis.set_aspect('equal', adjustable='datalim')
        axis.set_xlabel('x m (odom)')
        axis.set_ylabel('y m')
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _plot_speeds(results: list[EpisodeResult], path: Path, step_s: float) -> None:
    names = sorted({r.metrics.scenario for r in results})
    fig, axes = plt.subplots(len(names), 1, figsize=(9, 2.2 * len(names)), squeeze=False)
    for axis, name in zip(axes[:, 0], names, strict=False):
        for result in (r for r in results if r.metrics.scenario == name and len(r.track)):
            times = step_s * np.arange(1, len(result.track) + 1)
            axis.plot(times, result.track[:, 3], lw=0.8)
        axis.set_title(f'{name}: speed', fontsize=9)
        axis.set_xlabel('time s')
        axis.set_ylabel('m/s')
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _plot_rates(aggregate: dict, path: Path) -> None:
    names = list(aggregate)
    x = np.arange(len(names))
    fig, axis = plt.subplots(figsize=(max(6, 0.8 * len(names)), 3.2))
    for offset, (key, label) in zip(
        (-0.25, 0.0, 0.25),
        (
            ('instruction_success_rate', 'instruction success'),
            ('collision_rate', 'collision'),
            ('off_road_rate', 'off-road'),
        ),
        strict=False,
    ):
        axis.bar(x + offset, [aggregate[n][key] for n in names], 0.25, label=label)
    axis.set_xticks(x, names, rotation=30, ha='right', fontsize=8)
    axis.set_ylim(0, 1.05)
    axis.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


BEV_COLOURS = {'drivable': (90, 90, 90), 'lane_marking': (235, 235, 235), 'vehicle': (220, 50, 50)}
"""RGB of each BEV class, painted in this order over a dark background."""


def bev_panel(layers: dict[str, np.ndarray], step: RecordedStep, grid: BevGrid) -> np.ndarray:
    """Draw BEV layers, x up, the driver's path in green, the ego in blue (RGB).

    `layers` maps class to a grid of probabilities (the model's neural map) or booleans (the
    simulator's ground truth); each class's colour is blended in by its value.
    """
    rows, cols = grid.shape
    canvas = np.full((rows, cols, 3), 40.0)
    for name, colour in BEV_COLOURS.items():
        if name in layers:
            weight = np.asarray(layers[name], float)[..., None]
            canvas = canvas * (1.0 - weight) + np.array(colour, float) * weight
    scale = BEV_PIXELS_PER_CELL
    image = cv2.resize(
        canvas.astype(np.uint8), (cols * scale, rows * scale), interpolation=cv2.INTER_NEAREST
    )

    def to_pixels(points_base: np.ndarray) -> np.ndarray:
        col = (points_base[:, 1] - grid.y_range[0]) / grid.cell_m * scale
        row = (points_base[:, 0] - grid.x_range[0]) / grid.cell_m * scale
        return np.column_stack([col, row]).astype(np.int32)

    x, y, yaw = step.ego
    if len(step.path_world):
        c, s = np.cos(yaw), np.sin(yaw)
        d = step.path_world - (x, y)
        base = np.column_stack([c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1]])
        cv2.polylines(image, [to_pixels(base)], False, (40, 220, 60), 2)
    ego_box = np.array([[3.8, 0.95], [3.8, -0.95], [-1.0, -0.95], [-1.0, 0.95]])
    cv2.fillConvexPoly(image, to_pixels(ego_box), (60, 120, 255))
    return np.ascontiguousarray(image[::-1, ::-1])  # x forward up, y left on the left


def labelled(panel: np.ndarray, label: str) -> np.ndarray:
    """Write a panel's name in its top-left corner."""
    cv2.putText(panel, label, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 0), 1)
    return panel


def gif_frame(step: RecordedStep, grid: BevGrid, title: str, time_s: float) -> np.ndarray:
    """Camera views in three columns, the BEV ground truth, the neural map, a caption (RGB).

    The neural map panel is there when the driver has a model.
    """
    views = [
        labelled(cv2.resize(image, (image.shape[1] // 2, image.shape[0] // 2)), name)
        for name, image in step.images.items()
    ]
    while len(views) % 3:
        views.append(np.zeros_like(views[0]))
    mosaic = np.vstack([np.hstack(views[i : i + 3]) for i in range(0, len(views), 3)])
    panels = [labelled(bev_panel(step.bev, step, grid), 'ground truth')]
    if step.neural_map is not None:
        panels.append(labelled(bev_panel(step.neural_map, step, grid), 'neural map'))
    height = mosaic.shape[0]
    panels = [
        cv2.resize(panel, (round(panel.shape[1] * height / panel.shape[0]), height))
        for panel in panels
    ]
    body = np.hstack([mosaic, *panels])
    caption = np.zeros((34, body.shape[1], 3), np.uint8)
    state = f'  safety: {step.safety_state}' if step.safety_state else ''
    lines = (
        f'{title}  t={time_s:5.1f} s  v={step.speed_mps:4.1f} m/s{state}',
        f'rationale: {step.rationale}',
    )
    for index, line in enumerate(lines):
        cv2.putText(
            caption, line, (6, 13 + 15 * index), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (255, 255, 255), 1
        )
    return np.vstack([caption, body])


def write_gif(result: EpisodeResult, path: Path, grid: BevGrid, step_s: float) -> Path:
    """Write a filmed episode as an animated GIF."""
    title = f'{result.metrics.scenario} seed {result.metrics.seed} ({result.metrics.driver})'
    indices = list(range(0, len(result.frames), GIF_STRIDE))[:GIF_MAX_FRAMES]
    images = [
        Image.fromarray(gif_frame(result.frames[i], grid, title, (i + 1) * step_s)).quantize(64)
        for i in indices
    ]
    images[0].save(
        path,
        save_all=True,
        append_images=images[1:],
        duration=int(1000 * step_s * GIF_STRIDE),
        loop=0,
    )
    return path


def write_report(
    results: list[EpisodeResult], out_dir: Path, grid: BevGrid, step_s: float = 0.1
) -> dict:
    """Write metrics.json, metrics.md, plots, GIFs and report.md showing them; return paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    aggregate = summary(results)
    write_json(
        out_dir / 'metrics.json',
        {'summary': aggregate, 'episodes': [r.metrics.as_dict() for r in results]},
    )
    table = metrics_table(aggregate)
    (out_dir / 'metrics.md').write_text(table, encoding='utf-8')
    _plot_tracks(results, out_dir / 'tracks.png')
    _plot_speeds(results, out_dir / 'speeds.png', step_s)
    _plot_rates(aggregate, out_dir / 'rates.png')
    gifs = [
        write_gif(r, out_dir / f'{r.metrics.scenario}_seed{r.metrics.seed}.gif', grid, step_s)
        for r in results
        if r.frames
    ]
    page = [
        '# Closed-loop evaluation',
        '',
        table.rstrip(),
        '',
        'Ego tracks, speeds, and rates per scenario:',
        '',
        '![tracks](tracks.png)',
        '![speeds](speeds.png)',
        '![rates](rates.png)',
        '',
        *(f'## {gif.stem}\n\n![{gif.stem}]({gif.name})\n' for gif in gifs),
    ]
    (out_dir / 'report.md').write_text('\n'.join(page), encoding='utf-8')
    return {'table': table, 'summary': aggregate, 'gifs': [str(g) for g in gifs]}
