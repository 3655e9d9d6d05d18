"""The privileged teacher: a ground-truth BEV raster, ego state and instruction in; plans out.

Learning by Cheating's first stage. Perception is given (the simulator's BEV, vla_sim.
privileged_bev), so the network only has to learn to drive and to read the instruction, from far
more frames than rendered pixels allow. Its output head is the student's (K refined anchors with
scores, a rationale class) on the same plan steps, so its answers are targets for the student
and it drives through the same safety monitor and controller.

The raster is encoded by a small strided CNN conditioned on the instruction (FiLM); the final
feature map is flattened, not pooled, so where things are (the lead 20 m ahead, the exit lane on
the right) reaches the planner.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor, nn

from vla_model.anchors import make_anchors
from vla_model.config import PRIVILEGED_CHANNELS, ModelConfig, student
from vla_model.instruction_grounding import InstructionGrounding
from vla_model.network import conv_block

TEACHER_OUTPUT_NAMES = ('trajectories', 'scores', 'rationale')


def _plan_head() -> ModelConfig:
    """Return the student configuration whose plan head (anchors, steps, inputs) it shares."""
    return student(speed_slot=True, ego_state_dim=4)


@dataclass(frozen=True)
class TeacherConfig:
    """Everything that fixes the teacher's shapes, and the input raster's channels and grid."""

    name: str = 'vla-teacher-bev'
    channels: tuple[str, ...] = PRIVILEGED_CHANNELS
    widths: tuple[int, ...] = (32, 64, 128)  # one stride-2 stage each: 64x48 -> 8x6
    feature_dim: int = 256  # the flattened BEV features, projected
    planner_hidden: int = 512
    plan: ModelConfig = field(default_factory=_plan_head)
    # Instruction grounding (vla_model.instruction_grounding): the training texts and intents
    # it holds; 0 reads the raw embedding. Set by the training run from its data.
    grounding_texts: int = 0
    grounding_intents: int = 0
    grounding_temperature: float = 0.02  # softmax temperature of the cosine scores

    @property
    def feature_size(self) -> tuple[int, int]:
        """(rows, cols) of the last feature map."""
        rows, cols = self.plan.bev_size
        stride = 2 ** len(self.widths)
        return rows // stride, cols // stride

    def to_json(self) -> str:
        """Serialise for checkpoint metadata."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> TeacherConfig:
        """Inverse of to_json; raises ValueError on keys this version does not know."""
        data = json.loads(text)
        plan = ModelConfig.from_json(json.dumps(data.pop('plan')))
        values = {key: tuple(v) if isinstance(v, list) else v for key, v in data.items()}
        try:
            return cls(**values, plan=plan)
        except TypeError as error:
            raise ValueError(f'not a teacher configuration of this version: {error}') from None


class PrivilegedTeacher(nn.Module):
    """The teacher network (see the module docstring)."""

    def __init__(self, config: TeacherConfig) -> None:
        super().__init__()
        self.config = config
        plan = config.plan
        first, *rest = config.widths
        self.stem = nn.Sequential(
            nn.Conv2d(len(config.channels), first, 4, 2, 1, bias=False),
            nn.BatchNorm2d(first),
            nn.ReLU(inplace=True),
            conv_block(first, first),
        )
        self.grounding = (
            InstructionGrounding(
                config.grounding_texts,
                config.grounding_intents,
                plan.instruction_dim,
                config.grounding_temperature,
            )
            if config.grounding_texts
            else None
        )
        self.film = nn.Linear(plan.instruction_input_dim, 2 * first)
        stages = []
        previous = first
        for width in rest:
            stages += [conv_block(previous, width, stride=2), conv_block(width, width)]
            previous = width
        self.stages = nn.Sequential(*stages)
        rows, cols = config.feature_size
        self.project = nn.Sequential(
            nn.Flatten(), nn.Linear(previous * rows * cols, config.feature_dim), nn.ReLU()
        )
        hidden = config.planner_hidden
        self.planner = nn.Sequential(
            nn.Linear(
                config.feature_dim + plan.instruction_input_dim + plan.ego_state_dim, hidden
            ),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
        )
        self.offsets = nn.Linear(hidden, plan.num_anchors * plan.horizon_steps * 3)
        self.scores = nn.Linear(hidden, plan.num_anchors)
        self.rationale = nn.Linear(hidden, len(plan.rationales))
        self.register_buffer('anchors', torch.from_numpy(make_anchors(plan)), persistent=False)

    def forward(
        self, raster: Tensor, ego_state: Tensor, instruction: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Run a batch.

        raster (B, channels, rows, cols) float from vla_sim.privileged_bev; ego_state (B, D) the
        first D of EGO_STATE_FIELDS; instruction (B, instruction_input_dim). Returns
        trajectories (B, K, T, 3) x, y, heading in base_link, scores (B, K) logits and
        rationale (B, R) logits.
        """
        if self.grounding is not None:
            instruction = self.grounding(instruction)
        gamma, beta = self.film(instruction).chunk(2, dim=1)
        features = self.stem(raster)
        features = features * (1.0 + gamma[:, :, None, None]) + beta[:, :, None, None]
        features = self.project(self.stages(features))
        hidden = self.planner(torch.cat([features, instruction, ego_state], 1))
        plan = self.config.plan
        offsets = self.offsets(hidden).reshape(-1, plan.num_anchors, plan.horizon_steps, 3)
        return self.anchors + offsets, self.scores(hidden), self.rationale(hidden)
