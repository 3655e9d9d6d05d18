"""Model v2's camera student: cameras to a neural map, and the teacher's planner on that map.

Learning by Cheating's student, shaped so that the two halves can each be taught the cheap way:
- **perception** (backbone, view look-up table, temporal fusion, map prior, BEV encoder, as in
  VlaNet) ends in a neural map drawn in the privileged teacher's raster channels: the mask
  classes as logits (the `bev_semantics` output, `ModelConfig.bev_classes`) and each vehicle's
  velocity. It does not read the instruction: what is on the road does not depend on the words.
  Its labels are the simulator's ground-truth raster, dense on every frame.
- **planning** is a PrivilegedTeacher reading that map (probabilities, the velocities where a
  vehicle is, and zeros for a channel the map does not predict; where the HD-map prior is given,
  a student since 2026-12-07 reads its layers, the route's lanes among them, in place of its
  own drawing of them), so it starts as the trained teacher and is fine-tuned on the student's
  own maps against the teacher's answers on the true ones. Only this small half reads the
  instruction, so one frame's perception serves many instructions in training.
Inputs and outputs are VlaNet's (vla_model.network.INPUT_NAMES / OUTPUT_NAMES): the export,
the hash pins, the backends and the inference node are unchanged.
"""

from __future__ import annotations

from dataclasses import replace
from typing import NamedTuple

import torch
from torch import Tensor, nn

from vla_model.config import (
    PRIVILEGED_CHANNELS,
    VELOCITY_CHANNELS,
    ModelConfig,
)
from vla_model.network import Backbone, VlaNet, conv_block, lift, register_view_buffers, warp
from vla_model.teacher_network import PrivilegedTeacher, TeacherConfig

NEURAL_MAP_CLASSES = (
    'drivable',
    'lane_marking',
    'vehicle',
    'lane_centreline',
    'route_lanes',
    'exit_lane',
)
"""The v2 neural map's mask classes: v1's three first (the published map), then the rest of the
teacher's raster that cameras can see."""


def student_v2(**overrides) -> ModelConfig:
    """Return model v2's student: 0.83 GFLOP a frame, a quarter of v1's pixels per cell."""
    return replace(
        ModelConfig(
            name='vla-student-v2',
            planner='neural_map',
            stem_stride=8,
            backbone_channels=(32, 64),
            bev_channels=40,
            # the six-camera rig sees a cell from at most two cameras at two heights
            lut_samples=4,
            depth_bins=16,  # each bin 30 % deeper than the one before: a car's length at 15 m
            speed_slot=True,
            ego_state_dim=4,
            map_prior_channels=3,  # with the route's lanes: which way to leave a junction
            planner_reads_map_prior=True,
            bev_classes=NEURAL_MAP_CLASSES,
        ),
        **overrides,
    )


PLAN_FIELDS = (
    'bev_x_range',
    'bev_y_range',
    'bev_cell_m',
    'instruction_dim',
    'speed_slot',
    'num_anchors',
    'horizon_steps',
    'step_s',
    'rationales',
    'ego_state_dim',
)
"""What a student and the teacher that plans for it must agree on: grid, inputs, plan head."""


def planner_config(config: ModelConfig) -> TeacherConfig:
    """Return the configuration of the teacher that plans for a student of `config`."""
    teacher = TeacherConfig(
        grounding_texts=config.grounding_texts, grounding_intents=config.grounding_intents
    )
    different = [
        name for name in PLAN_FIELDS if getattr(config, name) != getattr(teacher.plan, name)
    ]
    if different:
        raise ValueError(f'the student and its planner differ in {", ".join(different)}')
    return teacher


def student_for(teacher: TeacherConfig) -> ModelConfig:
    """Return model v2's student configuration for the teacher it is distilled from.

    The student carries the teacher's instruction grounding; raises ValueError for a teacher
    that cannot plan for it (another grid, inputs or plan head).
    """
    config = student_v2(
        grounding_texts=teacher.grounding_texts, grounding_intents=teacher.grounding_intents
    )
    if planner_config(config) != teacher:
        raise ValueError('the teacher is of another configuration than the one that plans for v2')
    return config


class NeuralMap(NamedTuple):
    """What the student's perception gives for one frame."""

    logits: Tensor  # (B, classes, rows, cols) mask class logits
    velocity: Tensor  # (B, 2, rows, cols) vehicle velocity layers, scaled
    features: Tensor  # (B, C, rows, cols) BEV features, the next frame's previous_bev
    depth: Tensor | None  # (B * cameras, bins, Hf, Wf) the lift's depth logits; None: no bins


class NeuralMapStudent(nn.Module):
    """The v2 camera student (see the module docstring)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        missing = set(config.bev_classes) - set(PRIVILEGED_CHANNELS)
        if missing:
            raise ValueError(f'neural map classes {sorted(missing)} are not teacher channels')
        self.config = config
        channels = config.bev_channels
        self.backbone = Backbone(
            config.backbone_channels, channels + config.depth_bins, config.stem_stride
        )
        self.temporal = conv_block(2 * channels, channels)
        self.map_prior = nn.Conv2d(config.map_prior_channels + 1, channels, 1)
        self.bev_encoder = nn.Sequential(
            conv_block(channels, channels), conv_block(channels, channels)
        )
        self.semantics = nn.Conv2d(channels, len(config.bev_classes), 1)
        self.velocity = nn.Conv2d(channels, len(VELOCITY_CHANNELS), 1)
        self.planner = PrivilegedTeacher(planner_config(config))
        # Where each teacher channel comes from: a mask class, a velocity layer, or nothing.
        self._sources = [
            ('mask', config.bev_classes.index(name))
            if name in config.bev_classes
            else ('velocity', VELOCITY_CHANNELS.index(name))
            if name in VELOCITY_CHANNELS
            else ('none', 0)
            for name in self.planner.config.channels
        ]
        # Which map-prior layer the planner reads in each teacher channel's place, if any.
        given = config.map_prior_layers if config.planner_reads_map_prior else ()
        self._prior_layers = [
            given.index(name) if name in given else None for name in self.planner.config.channels
        ]
        self._vehicle = config.bev_classes.index('vehicle')
        register_view_buffers(self, config)

    def neural_map(
        self,
        images: Tensor,
        lut_index: Tensor,
        lut_weight: Tensor,
        previous_bev: Tensor,
        ego_motion: Tensor,
        map_prior: Tensor,
        map_prior_present: Tensor,
    ) -> NeuralMap:
        """Return the map's class logits, its velocity layers, the BEV features and depth."""
        bev, depth = lift(self, images, lut_index, lut_weight)
        batch, _, rows, cols = bev.shape
        bev = self.temporal(torch.cat([bev, warp(self, previous_bev, ego_motion)], 1))
        present = map_prior_present.reshape(batch, 1, 1, 1)
        prior_input = torch.cat([map_prior * present, present.expand(batch, 1, rows, cols)], 1)
        bev = self.bev_encoder(bev + self.map_prior(prior_input))
        return NeuralMap(self.semantics(bev), self.velocity(bev), bev, depth)

    def planner_raster(
        self, logits: Tensor, velocity: Tensor, map_prior: Tensor, map_prior_present: Tensor
    ) -> Tensor:
        """Return the teacher's input drawn from the neural map (see the module docstring).

        With `planner_reads_map_prior`, a channel the map prior gives is the prior's layer where
        it is present: the teacher learnt on that truth, and a drawn route is a guess.
        """
        probabilities = torch.sigmoid(logits)
        vehicle = probabilities[:, self._vehicle : self._vehicle + 1]
        present = map_prior_present.reshape(-1, 1, 1, 1)
        layers = []
        for (kind, index), prior in zip(self._sources, self._prior_layers, strict=True):
            if kind == 'mask':
                layer = probabilities[:, index : index + 1]
            elif kind == 'velocity':
                layer = velocity[:, index : index + 1] * vehicle
            else:
                layer = torch.zeros_like(vehicle)
            if prior is not None:
                layer = present * map_prior[:, prior : prior + 1] + (1.0 - present) * layer
            layers.append(layer)
        return torch.cat(layers, 1)

    def forward(
        self,
        images: Tensor,
        lut_index: Tensor,
        lut_weight: Tensor,
        previous_bev: Tensor,
        ego_motion: Tensor,
        ego_state: Tensor,
        instruction: Tensor,
        map_prior: Tensor,
        map_prior_present: Tensor,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """Run one frame; inputs and outputs as VlaNet.forward's."""
        logits, velocity, bev, _ = self.neural_map(
            images, lut_index, lut_weight, previous_bev, ego_motion, map_prior, map_prior_present
        )
        trajectories, scores, rationale = self.planner(
            self.planner_raster(logits, velocity, map_prior, map_prior_present),
            ego_state,
            instruction,
        )
        return trajectories, scores, logits, rationale, bev


def build_network(config: ModelConfig) -> nn.Module:
    """Return the network `config` describes: v1's VlaNet, or the v2 neural-map student."""
    if config.planner == 'neural_map':
        return NeuralMapStudent(config)
    if config.planner != 'pooled':
        raise ValueError(f'unknown planner {config.planner!r}: pooled or neural_map')
    return VlaNet(config)
