"""Training losses of the driving network: plans, neural map, rationale, and distillation.

The planner proposes K refined anchors and scores them, so its loss is multi-modal
(winner-takes-all, as MultiPath / VADv2): only the candidate closest to the logged future is
regressed toward it, and the scores learn to pick that candidate (cross-entropy). Regressing all
K toward the one future would collapse them onto the mean of the modes (half a lane change).
Positions alone leave the plan's speed profile loose: a candidate can be close to the future
point by point and still zig-zag, or start faster than the car goes. The safety monitor derives
speed, acceleration and jerk from the points and refuses such plans, so the winner's velocities
and accelerations (finite differences from the vehicle) are regressed toward the future's too.
"""

from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn import functional

HEADING_WEIGHT_M_PER_RAD = 2.0
"""How many metres of position error one radian of heading error counts as."""


@dataclass(frozen=True)
class LossWeights:
    """Weights of the terms in the total loss."""

    trajectory: float = 1.0
    score: float = 1.0
    bev: float = 1.0
    rationale: float = 0.2
    kinematics: float = 0.5


def candidate_errors(candidates: Tensor, target: Tensor) -> Tensor:
    """Return (B, K) mean pose error of each candidate (B, K, T, 3) to the target (B, T, 3), m."""
    position = (candidates[..., :2] - target[:, None, :, :2]).norm(dim=-1)
    heading = candidates[..., 2] - target[:, None, :, 2]
    heading = torch.atan2(torch.sin(heading), torch.cos(heading)).abs()
    return (position + HEADING_WEIGHT_M_PER_RAD * heading).mean(-1)


def path_derivatives(poses: Tensor, step_s: float) -> tuple[Tensor, Tensor]:
    """Return velocities (..., T, 2) and accelerations (..., T - 1, 2) of points from the origin.

    `poses` (..., T, 3) are spaced `step_s` apart, the first one step after the vehicle (0, 0).
    """
    xy = functional.pad(poses[..., :2], (0, 0, 1, 0))
    velocities = xy.diff(dim=-2) / step_s
    return velocities, velocities.diff(dim=-2) / step_s


def planning_loss(
    trajectories: Tensor, scores: Tensor, target: Tensor, step_s: float
) -> tuple[Tensor, Tensor, Tensor]:
    """Winner-takes-all regression of the closest candidate, its kinematics, and its score.

    Returns the pose regression, the velocity-and-acceleration regression and the score
    cross-entropy.
    """
    winner = candidate_errors(trajectories.detach(), target).argmin(-1)
    chosen = trajectories[torch.arange(len(winner)), winner]
    regression = functional.smooth_l1_loss(chosen, target)
    chosen_velocity, chosen_acceleration = path_derivatives(chosen, step_s)
    target_velocity, target_acceleration = path_derivatives(target, step_s)
    kinematics = functional.smooth_l1_loss(
        chosen_velocity, target_velocity
    ) + functional.smooth_l1_loss(chosen_acceleration, target_acceleration)
    return regression, kinematics, functional.cross_entropy(scores, winner)


def bev_loss(logits: Tensor, target: Tensor, valid: Tensor) -> Tensor:
    """Binary cross-entropy per BEV class over the samples that have a BEV label."""
    if not valid.any():
        return logits.sum() * 0.0
    return functional.binary_cross_entropy_with_logits(logits[valid], target[valid])


def neural_map_loss(logits: Tensor, target: Tensor, positive_weight: Tensor) -> Tensor:
    """Binary cross-entropy per map class, a class's positive cells weighted `positive_weight`.

    Vehicles fill about 0.6 % of the cells within 30 m: unweighted, the loss is least for a map
    that never draws one (the v4 student's vehicle IoU stayed 0.0 for 1 780 steps). Weighting
    the positives, as Lift-Splat-Shoot does (pos_weight 2.13), makes missing a vehicle cost what
    a false one does. `positive_weight` holds one weight per class, (classes,).
    """
    return functional.binary_cross_entropy_with_logits(
        logits, target, pos_weight=positive_weight[:, None, None]
    )


def rationale_loss(logits: Tensor, target: Tensor) -> Tensor:
    """Cross-entropy over the samples that have a rationale label (target >= 0)."""
    valid = target >= 0
    if not valid.any():
        return logits.sum() * 0.0
    return functional.cross_entropy(logits[valid], target[valid])


def plan_distillation_loss(
    student_trajectories: Tensor,
    student_scores: Tensor,
    teacher_trajectories: Tensor,
    teacher_scores: Tensor,
    weighted: bool = False,
) -> tuple[Tensor, Tensor]:
    """Match the teacher's candidates (smooth L1, candidate by candidate) and scores (KL).

    Both refine the same anchors, so candidate k answers for candidate k. `weighted`: each
    candidate counts by the teacher's probability for it, so the student spends its capacity on
    the plans the teacher would drive, not on ones it never picks.
    """
    errors = functional.smooth_l1_loss(
        student_trajectories, teacher_trajectories, reduction='none'
    ).mean(dim=(-2, -1))
    teacher_log = functional.log_softmax(teacher_scores, -1)
    weights = teacher_log.exp() if weighted else torch.full_like(errors, 1.0 / errors.shape[-1])
    score = functional.kl_div(
        functional.log_softmax(student_scores, -1),
        teacher_log,
        reduction='batchmean',
        log_target=True,
    )
    return (errors * weights).sum(-1).mean(), score


def velocity_loss(predicted: Tensor, target: Tensor, vehicle: Tensor) -> Tensor:
    """Smooth L1 of the velocity layers (B, 2, rows, cols) on the cells with a vehicle."""
    cells = vehicle.expand_as(target) > 0.5
    if not cells.any():
        return predicted.sum() * 0.0
    return functional.smooth_l1_loss(predicted[cells], target[cells])


def mask_iou(logits: Tensor, target: Tensor) -> Tensor:
    """Return the intersection over union of (logits > 0) with a 0/1 target, over all cells."""
    predicted = logits > 0.0
    truth = target > 0.5
    union = (predicted | truth).sum()
    return (predicted & truth).sum() / union.clamp(min=1)
