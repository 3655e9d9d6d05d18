"""Training losses of the driving network: plans, neural map, rationale, and distillation.

The planner proposes K refined anchors and scores them, so its loss is multi-modal
(winner-takes-all, as MultiPath / VADv2): only the candidate closest to the logged future is
regressed toward it, and the scores learn to pick that candidate (cross-entropy). Regressing all
K toward the one future would collapse them onto the mean of the modes (half a lane change).
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
    distill_trajectory: float = 1.0
    distill_score: float = 1.0
    distill_bev: float = 0.5


def candidate_errors(candidates: Tensor, target: Tensor) -> Tensor:
    """Return (B, K) mean pose error of each candidate (B, K, T, 3) to the target (B, T, 3), m."""
    position = (candidates[..., :2] - target[:, None, :, :2]).norm(dim=-1)
    heading = candidates[..., 2] - target[:, None, :, 2]
    heading = torch.atan2(torch.sin(heading), torch.cos(heading)).abs()
    return (position + HEADING_WEIGHT_M_PER_RAD * heading).mean(-1)


def planning_loss(trajectories: Tensor, scores: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Winner-takes-all regression of the closest candidate, and cross-entropy on its score."""
    winner = candidate_errors(trajectories.detach(), target).argmin(-1)
    chosen = trajectories[torch.arange(len(winner)), winner]
    regression = functional.smooth_l1_loss(chosen, target)
    return regression, functional.cross_entropy(scores, winner)


def bev_loss(logits: Tensor, target: Tensor, valid: Tensor) -> Tensor:
    """Binary cross-entropy per BEV class over the samples that have a BEV label."""
    if not valid.any():
        return logits.sum() * 0.0
    return functional.binary_cross_entropy_with_logits(logits[valid], target[valid])


def rationale_loss(logits: Tensor, target: Tensor) -> Tensor:
    """Cross-entropy over the samples that have a rationale label (target >= 0)."""
    valid = target >= 0
    if not valid.any():
        return logits.sum() * 0.0
    return functional.cross_entropy(logits[valid], target[valid])


def distillation_loss(
    student: dict[str, Tensor], teacher: dict[str, Tensor]
) -> tuple[Tensor, Tensor, Tensor]:
    """Match the teacher's candidates, score distribution (KL) and neural map (soft BCE)."""
    trajectory = functional.smooth_l1_loss(student['trajectories'], teacher['trajectories'])
    score = functional.kl_div(
        functional.log_softmax(student['scores'], -1),
        functional.log_softmax(teacher['scores'], -1),
        reduction='batchmean',
        log_target=True,
    )
    bev = functional.binary_cross_entropy_with_logits(
        student['bev_semantics'], torch.sigmoid(teacher['bev_semantics'])
    )
    return trajectory, score, bev
