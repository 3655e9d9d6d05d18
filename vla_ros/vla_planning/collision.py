"""Collision rule: the ego footprint swept along a plan against obstacles at constant velocity.

Everything is in base_link at the plan's stamp. The plan is resampled every `step_s` (plan points
0.5 s apart at 25 m/s are 12.5 m apart, longer than a car: a conflict between two points would be
missed), the ego box is placed at each sample, every obstacle box is moved to the same time, and
the oriented boxes are tested for overlap by the separating-axis theorem, all vectorised.
"""

import math
from dataclasses import dataclass

import numpy as np

from vla_planning.safety_rules import Check, Verdict


@dataclass(frozen=True)
class VehicleShape:
    """The ego vehicle's footprint relative to base_link (rear-axle centre, x forward), metres."""

    length_m: float = 4.8
    width_m: float = 1.9
    rear_overhang_m: float = 1.0  # from the rear bumper to base_link
    margin_m: float = 0.1  # added on every side [RSS lateral margin 0.1 m]


@dataclass(frozen=True)
class Obstacles:
    """Obstacle boxes at the plan's stamp, in base_link: centres, yaw, size, velocity."""

    centres: np.ndarray  # (n, 2) m
    yaws: np.ndarray  # (n,) rad
    sizes: np.ndarray  # (n, 2) length, width, m
    velocities: np.ndarray  # (n, 2) m/s


def resample(times_s: np.ndarray, poses: np.ndarray, step_s: float) -> tuple[np.ndarray, ...]:
    """Return (times, poses) every step_s from 0 to the last time; the ego starts at the origin."""
    times = np.concatenate([[0.0], times_s])
    poses = np.vstack([np.zeros((1, 3)), poses])
    samples = np.arange(0.0, times[-1] + 1e-9, step_s)
    headings = np.unwrap(poses[:, 2])
    return samples, np.column_stack(
        [
            np.interp(samples, times, poses[:, 0]),
            np.interp(samples, times, poses[:, 1]),
            np.interp(samples, times, headings),
        ]
    )


def box_corners(centres: np.ndarray, yaws: np.ndarray, half_sizes: np.ndarray) -> np.ndarray:
    """Return (..., 4, 2) corners of oriented boxes with the given centres, yaws, half sizes."""
    signs = np.array([[1, 1], [1, -1], [-1, -1], [-1, 1]], dtype=float)
    local = signs * half_sizes[..., None, :]
    cos, sin = np.cos(yaws)[..., None], np.sin(yaws)[..., None]
    x = local[..., 0] * cos - local[..., 1] * sin
    y = local[..., 0] * sin + local[..., 1] * cos
    return np.stack([x, y], -1) + centres[..., None, :]


def boxes_overlap(
    a: np.ndarray, a_yaws: np.ndarray, b: np.ndarray, b_yaws: np.ndarray
) -> np.ndarray:
    """Separating-axis test of corner arrays a and b (..., 4, 2); True where they overlap."""
    axes = np.stack(
        [
            np.cos(a_yaws),
            np.sin(a_yaws),
            -np.sin(a_yaws),
            np.cos(a_yaws),
            np.cos(b_yaws),
            np.sin(b_yaws),
            -np.sin(b_yaws),
            np.cos(b_yaws),
        ],
        -1,
    ).reshape(*a_yaws.shape, 4, 2)
    project_a = np.einsum('...ck,...ak->...ac', a, axes)
    project_b = np.einsum('...ck,...ak->...ac', b, axes)
    separated = (project_a.max(-1) < project_b.min(-1)) | (project_b.max(-1) < project_a.min(-1))
    return ~separated.any(-1)


def first_conflict_s(
    times_s: np.ndarray,
    poses: np.ndarray,
    obstacles: Obstacles,
    shape: VehicleShape,
    step_s: float = 0.1,
) -> float:
    """Return the first time the swept ego footprint overlaps an obstacle; +inf if never."""
    if len(obstacles.centres) == 0 or times_s.size == 0:
        return math.inf
    samples, ego = resample(times_s, poses, step_s)
    half = np.array([shape.length_m / 2 + shape.margin_m, shape.width_m / 2 + shape.margin_m])
    offset = shape.length_m / 2 - shape.rear_overhang_m  # base_link to the box centre
    ego_centres = ego[:, :2] + offset * np.column_stack([np.cos(ego[:, 2]), np.sin(ego[:, 2])])
    obstacle_centres = (
        obstacles.centres[None] + samples[:, None, None] * obstacles.velocities[None]
    )
    # Bounding circles first: only pairs that could touch go through the separating-axis test.
    reach = np.hypot(*half) + np.hypot(obstacles.sizes[:, 0], obstacles.sizes[:, 1]) / 2
    distances = np.linalg.norm(ego_centres[:, None] - obstacle_centres, axis=-1)
    sample_index, obstacle_index = np.nonzero(distances <= reach[None])
    if sample_index.size == 0:
        return math.inf
    ego_yaws = ego[sample_index, 2]
    obstacle_yaws = obstacles.yaws[obstacle_index]
    hits = boxes_overlap(
        box_corners(ego_centres[sample_index], ego_yaws, half),
        ego_yaws,
        box_corners(
            obstacle_centres[sample_index, obstacle_index],
            obstacle_yaws,
            obstacles.sizes[obstacle_index] / 2,
        ),
        obstacle_yaws,
    )
    return float(samples[sample_index[hits].min()]) if hits.any() else math.inf


def check_collision(rule: str, conflict_s: float, min_time_to_collision_s: float) -> Check:
    """Reject a plan that hits an obstacle; stop at once if the hit is within the TTC minimum."""
    if math.isnan(conflict_s):
        return Check(
            rule,
            Verdict.EMERGENCY,
            'cannot evaluate: conflict time is NaN',
            math.nan,
            min_time_to_collision_s,
        )
    if math.isinf(conflict_s):
        return Check(
            rule, Verdict.PASS, 'no conflict along the plan', math.inf, min_time_to_collision_s
        )
    verdict = Verdict.EMERGENCY if conflict_s < min_time_to_collision_s else Verdict.OVERRIDE
    return Check(
        rule,
        verdict,
        f'the plan hits an obstacle after {conflict_s:.1f} s',
        conflict_s,
        min_time_to_collision_s,
    )
