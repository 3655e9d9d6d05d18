"""Time the camera renderer on real highway-env traffic, and draw one frame of a rig as a picture.

The scenes come from the `dense_traffic` scenario driven by the expert, stepped at the camera
rate, so the raster repaints about as much ground per frame as in closed loop.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from vla_model.bev_geometry import rotation_from_quaternion
from vla_perception.rig import RigConfig
from vla_planning.collision import VehicleShape
from vla_sim.camera_renderer import CameraRenderer
from vla_sim.scenarios import get_scenario
from vla_sim.scene import MarkingStyle, Pose2D, Scene, footprint
from vla_sim.simulation import SimConfig, SimulationCore
from vla_tools.bench_harness import machine_line, summary

SCENARIO = 'dense_traffic'
"""About 20 vehicles within the cameras' range."""


def _scenes(rig: RigConfig, count: int) -> list[Scene]:
    """Return `count` consecutive scenes of the benchmark scenario (seed 0), expert-driven."""
    core = SimulationCore(get_scenario(SCENARIO), 0, rig, SimConfig(render=False))
    scenes = [core.frame.scene]
    while len(scenes) < count:
        scenes.append(core.step(core.expert_decision().command).scene)
    return scenes


def _summary(values: list[float]) -> dict[str, float]:
    """Return p50, p99 and mean of timings, rounded to microseconds."""
    return summary(values, 3, ('p50', 'p99', 'mean'))


def run_render_benchmark(rig_path: str | Path, steps: int = 200, warmup: int = 10) -> dict:
    """Render the rig on dense highway traffic for `steps` frames, one OpenCV thread.

    Returns ms per step for the whole rig and per camera (p50, p99, mean), the shared road and
    actor work, and how many actors the cameras drew. The first `warmup` frames are not counted
    (the raster is painted whole on the first one).
    """
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        rig = RigConfig.from_file(rig_path)
        renderer = CameraRenderer(rig)
        totals: list[float] = []
        parts: dict[str, list[float]] = {}
        in_view: list[int] = []
        for step, scene in enumerate(_scenes(rig, warmup + steps)):
            start = time.perf_counter()
            renderer.render(scene)
            elapsed = 1e3 * (time.perf_counter() - start)
            if step >= warmup:
                totals.append(elapsed)
                for name, value in renderer.last_timing_ms.items():
                    parts.setdefault(name, []).append(value)
                in_view.append(renderer.last_actors_in_view)
    finally:
        cv2.setNumThreads(threads)
    first = rig.cameras[0].intrinsics
    return {
        'steps': steps,
        'threads': 1,
        'cameras': len(rig.cameras),
        'image_size': [first.width, first.height],
        'machine': machine_line(),
        'step_ms': _summary(totals),
        'road_ms': _summary(parts.pop('road')),
        'camera_ms': {name: _summary(values) for name, values in parts.items()},
        'actors_in_view': {
            'mean': round(float(np.mean(in_view)), 1),
            'min': int(min(in_view)),
            'max': int(max(in_view)),
        },
    }


def save_rig_views(rig_path: str | Path, out_png: str | Path, steps: int = 30) -> Path:
    """Render one dense-traffic frame (after `steps` frames of traffic) as a labelled mosaic PNG.

    One panel per camera in rig order, and a top-down sketch of the road, the actors and each
    camera's field of view, so a reader can tell what every camera should show.
    """
    import matplotlib

    matplotlib.use('Agg')
    from matplotlib import pyplot as plt

    rig = RigConfig.from_file(rig_path)
    renderer = CameraRenderer(rig)
    scene = _scenes(rig, steps + 1)[-1]
    images = renderer.render(scene)
    columns = 3
    rows = -(-len(rig.cameras) // columns)
    figure = plt.figure(figsize=(4.0 * columns + 4.5, 2.45 * rows + 0.5), dpi=100)
    grid = figure.add_gridspec(rows, columns + 1, width_ratios=[4.0] * columns + [4.5])
    for index, camera in enumerate(rig.cameras):
        axes = figure.add_subplot(grid[index // columns, index % columns])
        axes.imshow(images[camera.name])
        axes.set_title(camera.name, fontsize=10)
        axes.set_axis_off()
    _sketch(figure.add_subplot(grid[:, columns]), scene, rig)
    figure.suptitle(
        f'Simulated camera rig on highway-v0: {len(rig.cameras)} pinhole cameras, '
        f'{renderer.last_actors_in_view} actors in view',
        fontsize=11,
    )
    figure.tight_layout()
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out_png)
    plt.close(figure)
    return out_png


def _sketch(axes: Any, scene: Scene, rig: RigConfig) -> None:
    """Draw the road, actors, ego and camera fields of view from above, around the ego."""
    from matplotlib.patches import Polygon

    for surface in scene.road.surfaces:
        axes.add_patch(Polygon(surface, closed=True, color='0.42', linewidth=0))
    for marking in scene.road.markings:
        style = '-' if marking.style is MarkingStyle.SOLID else (0, (3, 1.3))
        axes.plot(*marking.points.T, color='white', linewidth=0.8, linestyle=style)
    for actor in scene.actors:
        corners = footprint(actor.pose, actor.length_m, actor.width_m)
        colour = np.array(actor.colour) / 255.0
        axes.add_patch(Polygon(corners, facecolor=colour, edgecolor='black', linewidth=0.5))
    ego, shape = scene.ego, VehicleShape()
    heading = np.array([np.cos(ego.yaw), np.sin(ego.yaw)])
    centre = np.array([ego.x, ego.y]) + shape.centre_offset_m * heading
    corners = footprint(Pose2D(*centre, ego.yaw), shape.length_m, shape.width_m)
    axes.add_patch(Polygon(corners, facecolor='red', edgecolor='black', linewidth=0.5))
    for index, camera in enumerate(rig.cameras):
        colour = f'C{index}'
        x, y = camera.translation[:2]
        c, s = np.cos(ego.yaw), np.sin(ego.yaw)
        origin = np.array([ego.x + c * x - s * y, ego.y + s * x + c * y])
        view = rotation_from_quaternion(camera.rotation)[:2, 2]  # optical z in base_link
        look = np.arctan2(view[1], view[0]) + ego.yaw
        half = np.arctan2(camera.intrinsics.width / 2.0, camera.intrinsics.fx)
        for edge in (look - half, look + half):
            tip = origin + 25.0 * np.array([np.cos(edge), np.sin(edge)])
            axes.plot(*np.column_stack([origin, tip]), color=colour, linewidth=0.8)
        label = origin + 29.0 * np.array([np.cos(look), np.sin(look)])
        box = {'facecolor': 'white', 'alpha': 0.8, 'pad': 1.0, 'linewidth': 0}
        axes.text(*label, camera.name, color=colour, fontsize=7, ha='center', bbox=box)
    axes.set_xlim(ego.x - 40.0, ego.x + 60.0)
    axes.set_ylim(ego.y - 32.0, ego.y + 32.0)
    axes.set_aspect('equal')
    axes.set_facecolor((0.33, 0.42, 0.22))
    axes.set_title('top-down: x forward, y left (m)', fontsize=10)
    axes.tick_params(labelsize=7)
