"""The fixed anchor trajectories the planner refines and scores (as VADv2 / DiffusionDrive).

Anchors span what a car does in the next seconds: keep going at several speeds, stop, change lane
either way, and turn gently either way. The network predicts an offset per anchor and a score;
the scores double as the plan's confidence.
"""

import numpy as np

from vla_model.config import ModelConfig

SPEEDS_MPS = (0.0, 5.0, 12.0, 20.0, 28.0)
LANE_WIDTH_M = 3.5


def make_anchors(config: ModelConfig) -> np.ndarray:
    """Return (num_anchors, horizon_steps, 3) x, y, heading in base_link, metres and radians."""
    t = np.arange(1, config.horizon_steps + 1) * config.step_s
    horizon = t[-1]
    anchors = []
    for speed in SPEEDS_MPS:  # straight, constant speed
        anchors.append(np.stack([speed * t, 0 * t, 0 * t], -1))
    for speed in (8.0, 15.0, 25.0):  # lane changes over the horizon (smooth lateral profile)
        for side in (1.0, -1.0):
            s = np.clip(t / horizon, 0, 1)
            y = side * LANE_WIDTH_M * (3 * s**2 - 2 * s**3)
            dy = side * LANE_WIDTH_M * (6 * s - 6 * s**2) / horizon
            anchors.append(np.stack([speed * t, y, np.arctan2(dy, speed)], -1))
    for speed in (5.0, 10.0):  # constant-curvature turns
        for yaw_rate in (0.25, -0.25):
            yaw = yaw_rate * t
            x = speed / yaw_rate * np.sin(yaw)
            y = speed / yaw_rate * (1 - np.cos(yaw))
            anchors.append(np.stack([x, y, yaw], -1))
    decel = 3.0  # a comfortable stop from 12 m/s
    v = np.maximum(12.0 - decel * t, 0.0)
    x = np.cumsum(
        np.concatenate(
            [
                [12.0 * config.step_s - decel * config.step_s**2 / 2],
                np.diff(t) * (v[:-1] + v[1:]) / 2,
            ]
        )
    )
    anchors.append(np.stack([x, 0 * t, 0 * t], -1))
    result = np.asarray(anchors, dtype=np.float32)
    if len(result) != config.num_anchors:
        raise ValueError(
            f'the anchor set has {len(result)} trajectories, the config asks for '
            f'{config.num_anchors}'
        )
    return result
