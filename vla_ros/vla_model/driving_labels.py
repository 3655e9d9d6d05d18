"""Training labels from what a bag logged: future ego poses, BEV grids, rationale texts.

A real-vehicle bag has only cameras, odometry and instructions, so the trajectory label comes
from odometry alone: where base_link will be at each plan step, expressed in base_link at the
frame's stamp (REP 103: x forward, y left, yaw counter-clockwise). BEV and rationale labels exist
only in simulated bags and are optional. A bag the student drove (DAgger) carries the expert's
trajectory from each state instead: the logged future is then the student's, not a label.
"""

from dataclasses import dataclass

import numpy as np

from vla_model.config import ModelConfig
from vla_model.trajectory_messages import trajectory_arrays
from vla_perception.synchronizer import to_ns

MAX_ODOMETRY_GAP_S = 0.5
"""A trajectory label is made only where odometry has no hole longer than this around it."""


@dataclass(frozen=True)
class PoseTrack:
    """A bag's odometry as planar poses, increasing in time, yaw unwrapped."""

    stamps_ns: np.ndarray  # (n,) int64, strictly increasing
    poses: np.ndarray  # (n, 3) x, y (m, odom) and continuous yaw (rad)

    @classmethod
    def from_samples(cls, samples: list[tuple[int, float, float, float]]) -> 'PoseTrack':
        """Build from (stamp ns, x, y, yaw) in log order.

        A sample not later than the one kept before it (a duplicate stamp, time running
        backwards) is dropped, so the track stays strictly increasing.
        """
        stamps, poses = [], []
        for stamp_ns, x, y, yaw in samples:
            if stamps and stamp_ns <= stamps[-1]:
                continue
            stamps.append(stamp_ns)
            poses.append((x, y, yaw))
        array = np.asarray(poses, dtype=np.float64).reshape(-1, 3)
        array[:, 2] = np.unwrap(array[:, 2])
        return cls(np.asarray(stamps, dtype=np.int64), array)

    def at(self, stamps_ns: np.ndarray) -> np.ndarray | None:
        """Interpolate poses at the stamps; None if one is outside the track or in a hole."""
        stamps_ns = np.asarray(stamps_ns, dtype=np.int64)
        if len(self.stamps_ns) < 2:
            return None
        if stamps_ns.min() < self.stamps_ns[0] or stamps_ns.max() > self.stamps_ns[-1]:
            return None
        after = np.clip(np.searchsorted(self.stamps_ns, stamps_ns), 1, len(self.stamps_ns) - 1)
        before = after - 1
        gap = self.stamps_ns[after] - self.stamps_ns[before]
        on_sample = (stamps_ns == self.stamps_ns[before]) | (stamps_ns == self.stamps_ns[after])
        if (gap[~on_sample] > to_ns(MAX_ODOMETRY_GAP_S)).any():
            return None
        fraction = ((stamps_ns - self.stamps_ns[before]) / gap)[:, None]
        return self.poses[before] + fraction * (self.poses[after] - self.poses[before])


def in_frame_of(origin: np.ndarray, poses: np.ndarray) -> np.ndarray:
    """Express odom poses (n, 3) in the frame of the odom pose `origin` (x, y, yaw)."""
    cos, sin = np.cos(origin[2]), np.sin(origin[2])
    dx, dy = poses[:, 0] - origin[0], poses[:, 1] - origin[1]
    yaw = poses[:, 2] - origin[2]
    return np.column_stack(
        [cos * dx + sin * dy, -sin * dx + cos * dy, np.arctan2(np.sin(yaw), np.cos(yaw))]
    )


def future_trajectory(track: PoseTrack, stamp_ns: int, config: ModelConfig) -> np.ndarray | None:
    """Return the (T, 3) poses at the plan's step times after stamp_ns, in base_link then.

    None when odometry does not cover the whole horizon (the end of a bag, a hole).
    """
    steps = np.arange(config.horizon_steps + 1) * to_ns(config.step_s)
    poses = track.at(stamp_ns + steps)
    if poses is None:
        return None
    return in_frame_of(poses[0], poses[1:]).astype(np.float32)


def expert_trajectory(message: object, config: ModelConfig) -> np.ndarray:
    """Read an expert label (vla_msgs/Trajectory, base_link) as the model's (T, 3) poses.

    Raises ValueError when it is in another frame or not at the model's plan steps: such a label
    cannot be used, and the logged future of a student's drive is no substitute.
    """
    times, poses, _ = trajectory_arrays(message)
    steps = np.arange(1, config.horizon_steps + 1) * config.step_s
    if message.header.frame_id != 'base_link':
        raise ValueError(f"expert trajectory in {message.header.frame_id!r}, not 'base_link'")
    if len(times) != len(steps) or not np.allclose(times, steps, atol=1e-3):
        raise ValueError(
            f'expert trajectory points at {np.round(times, 3).tolist()} s; the model plans at '
            f'{steps.tolist()} s'
        )
    return poses.astype(np.float32)


def occupancy_mask(message: object, config: ModelConfig) -> np.ndarray | None:
    """Read a BEV nav_msgs/OccupancyGrid on the model's grid as a (rows, cols) bool mask.

    The layout is the neural map's: info.width counts rows (along x), info.height columns
    (along y), cell (row, col) is data[col * width + row]; occupied means > 50. None when the
    grid is not the model's (other size, resolution or origin), so it cannot be a label.
    """
    info = message.info
    rows, cols = config.bev_size
    same_grid = (
        (info.width, info.height) == (rows, cols)
        and np.isclose(info.resolution, config.bev_cell_m)
        and np.isclose(info.origin.position.x, config.bev_x_range[0])
        and np.isclose(info.origin.position.y, config.bev_y_range[0])
        and len(message.data) == rows * cols
    )
    if not same_grid:
        return None
    data = np.asarray(message.data, dtype=np.int8).reshape(cols, rows)
    return (data > 50).T


def rationale_index(text: str, config: ModelConfig) -> int:
    """Return the class of a rationale text in the model's vocabulary, or -1 if it is not one."""
    try:
        return config.rationales.index(text.strip())
    except ValueError:
        return -1
