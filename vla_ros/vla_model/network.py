"""The driving network: cameras, ego motion, instruction in; plans, neural map, rationale out.

Shared image backbone per camera -> gather into a BEV grid by the rig's look-up table -> fuse
with the previous BEV warped by ego motion -> add the optional map prior -> condition on the
instruction embedding (FiLM) -> heads. Every op exports to ONNX opset 18 and TensorRT without
plugins: convolutions, Gather (index_select), 4-D GridSample, matrix products.
"""

import torch
from torch import Tensor, nn
from torch.nn import functional

from vla_model.anchors import make_anchors
from vla_model.bev_geometry import warp_grid_base
from vla_model.config import ModelConfig

INPUT_NAMES = (
    'images',
    'lut_index',
    'lut_weight',
    'previous_bev',
    'ego_motion',
    'ego_state',
    'instruction',
    'map_prior',
    'map_prior_present',
)
OUTPUT_NAMES = ('trajectories', 'scores', 'bev_semantics', 'rationale', 'bev_features')
IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406])
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225])
"""The RGB normalisation the backbone's stem was initialised for (torchvision's)."""


def conv_block(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    """3x3 convolution, batch norm (folded into the convolution on export), ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class Backbone(nn.Module):
    """A small convolutional image encoder shared by all cameras.

    A stride-4 (or 8) "patchify" stem (as ConvNeXt) instead of full-resolution 3x3 convolutions,
    which cost most of the arithmetic for six cameras; then one stride-2 stage per further width.
    """

    def __init__(self, channels: tuple[int, ...], out_channels: int, stem_stride: int = 4) -> None:
        super().__init__()
        stem, *widths = channels
        stages = [
            nn.Conv2d(3, stem, stem_stride, stem_stride, bias=False),
            nn.BatchNorm2d(stem),
            nn.ReLU(inplace=True),
        ]
        previous = stem
        for width in widths:
            stages += [conv_block(previous, width, stride=2), conv_block(width, width)]
            previous = width
        self.stages = nn.Sequential(*stages)
        self.project = nn.Conv2d(previous, out_channels, 1)

    def forward(self, pixels: Tensor) -> Tensor:
        """Map (n, 3, H, W) RGB pixels in 0-255 to (n, C, H / stride, W / stride) features.

        The ImageNet normalisation ((p / 255 - mean) / std) is folded into the stem: the stem is
        linear and unpadded, so scaling its weights per input channel and adding the shift as a
        bias is exactly the same, without a division and a subtraction over every pixel of six
        cameras (16 % of a profiled training step's CPU time; docs/TRAINING.md).
        """
        stem = self.stages[0]
        weight = stem.weight / (255.0 * IMAGENET_STD.to(stem.weight)).view(1, 3, 1, 1)
        shift = (IMAGENET_MEAN / IMAGENET_STD).to(stem.weight).view(1, 3, 1, 1)
        bias = -(stem.weight * shift).sum(dim=(1, 2, 3))
        features = functional.conv2d(pixels, weight, bias, stride=stem.stride)
        return self.project(self.stages[1:](features))


class VlaNet(nn.Module):
    """The reference student/teacher network (see the module docstring)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        channels = config.bev_channels
        self.backbone = Backbone(config.backbone_channels, channels, config.stem_stride)
        self.temporal = conv_block(2 * channels, channels)
        self.map_prior = nn.Conv2d(config.map_prior_channels + 1, channels, 1)
        self.film = nn.Linear(config.instruction_input_dim, 2 * channels)
        self.bev_encoder = nn.Sequential(
            conv_block(channels, channels), conv_block(channels, channels)
        )
        self.semantics = nn.Conv2d(channels, len(config.bev_classes), 1)
        self.plan_trunk = nn.Sequential(
            conv_block(channels, channels, stride=2),
            conv_block(channels, channels, stride=2),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        hidden = config.planner_hidden
        self.planner = nn.Sequential(
            nn.Linear(channels + config.instruction_input_dim + config.ego_state_dim, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
        )
        self.offsets = nn.Linear(hidden, config.num_anchors * config.horizon_steps * 3)
        self.scores = nn.Linear(hidden, config.num_anchors)
        self.rationale = nn.Linear(hidden, len(config.rationales))
        self.register_buffer('anchors', torch.from_numpy(make_anchors(config)), persistent=False)
        register_view_buffers(self, config)

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
        """Run one frame.

        images (B, N, H, W, 3) uint8 RGB, as SensorFrame carries them; lut_index / lut_weight
        (cells, samples) from build_view_lut; previous_bev (B, C, rows, cols), zeros after a
        reset; ego_motion (B, 3) dx, dy, dyaw of this frame's base_link in the previous one;
        ego_state (B, 3) speed, yaw rate, acceleration; instruction (B, 384) sentence embedding;
        map_prior (B, P, rows, cols) and map_prior_present (B, 1), 0 when there is no map.
        Returns trajectories (B, K, T, 3) x, y, heading in base_link; scores (B, K) logits;
        bev_semantics (B, classes, rows, cols) logits; rationale (B, R) logits; bev_features.
        """
        bev, _ = lift(self, images, lut_index, lut_weight)
        batch, _, rows, cols = bev.shape
        bev = self.temporal(torch.cat([bev, warp(self, previous_bev, ego_motion)], 1))
        present = map_prior_present.reshape(batch, 1, 1, 1)
        prior_input = torch.cat([map_prior * present, present.expand(batch, 1, rows, cols)], 1)
        bev = bev + self.map_prior(prior_input)
        gamma, beta = self.film(instruction).chunk(2, dim=1)
        bev = self.bev_encoder(bev * (1.0 + gamma[:, :, None, None]) + beta[:, :, None, None])

        hidden = self.planner(torch.cat([self.plan_trunk(bev), instruction, ego_state], 1))
        steps = self.config.horizon_steps
        offsets = self.offsets(hidden).reshape(batch, self.config.num_anchors, steps, 3)
        return (
            self.anchors + offsets,
            self.scores(hidden),
            self.semantics(bev),
            self.rationale(hidden),
            bev,
        )


def register_view_buffers(module: nn.Module, config: ModelConfig) -> None:
    """Give `module` the constant `warp` reads (not saved with the weights)."""
    module.register_buffer(
        'cell_centres', torch.from_numpy(warp_grid_base(config)), persistent=False
    )


def lift(
    network: nn.Module, images: Tensor, lut_index: Tensor, lut_weight: Tensor
) -> tuple[Tensor, Tensor | None]:
    """Encode each camera with `network.backbone` and gather the features into the BEV grid.

    images (B, N, H, W, 3) uint8 RGB; lut_index / lut_weight (cells, samples) from
    build_view_lut. With depth bins, a sample counts by its pixel's probability of the cell's
    depth as well. Returns the BEV (B, C, rows, cols) and the depth logits (B * N, bins, Hf,
    Wf), None without depth bins.
    """
    batch, cameras, height, width, _ = images.shape
    rows, cols = network.config.bev_size
    pixels = images.permute(0, 1, 4, 2, 3).reshape(batch * cameras, 3, height, width)
    features = network.backbone(pixels.float())
    depth = None
    if network.config.depth_bins:  # the backbone's last channels are the depth logits
        features, depth = features.split(
            [features.shape[1] - network.config.depth_bins, network.config.depth_bins], 1
        )
    channels, feature_h, feature_w = features.shape[1:]
    flat = features.reshape(batch, cameras, channels, feature_h * feature_w)
    flat = flat.permute(0, 2, 1, 3).reshape(batch, channels, cameras * feature_h * feature_w)
    flat = functional.pad(flat, (0, 1))  # the zero feature that unseen samples point to
    bins = network.config.depth_bins
    pixel = lut_index // bins if bins else lut_index
    gathered = flat.index_select(2, pixel.reshape(-1))
    gathered = gathered.reshape(batch, channels, lut_index.shape[0], lut_index.shape[1])
    weight = lut_weight
    if depth is not None:
        weight = lut_weight * _depth_probability(depth, lut_index, batch, cameras)
    return (gathered * weight).sum(-1).reshape(batch, channels, rows, cols), depth


def _depth_probability(depth: Tensor, lut_index: Tensor, batch: int, cameras: int) -> Tensor:
    """Return (B, 1, cells, samples): the probability each sample's pixel gives the cell's depth.

    depth (B * cameras, bins, Hf, Wf) logits; lut_index holds pixel * bins + bin, so one gather
    into the pixel-major probabilities reads them; the appended zeros answer unseen samples.
    """
    bins = depth.shape[1]
    probability = functional.softmax(depth, dim=1)
    flat = probability.reshape(batch, cameras, bins, -1).permute(0, 1, 3, 2).reshape(batch, -1)
    flat = functional.pad(flat, (0, bins))
    return flat.index_select(1, lut_index.reshape(-1)).reshape(batch, 1, *lut_index.shape)


def warp(network: nn.Module, previous_bev: Tensor, ego_motion: Tensor) -> Tensor:
    """Resample the previous BEV into this frame: each cell reads where it was then."""
    x, y = network.cell_centres[..., 0], network.cell_centres[..., 1]
    dx, dy, dyaw = (ego_motion[:, i].reshape(-1, 1, 1) for i in range(3))
    cos, sin = torch.cos(dyaw), torch.sin(dyaw)
    x_before = cos * x - sin * y + dx
    y_before = sin * x + cos * y + dy
    (x_min, x_max), (y_min, y_max) = network.config.bev_x_range, network.config.bev_y_range
    grid = torch.stack(
        [
            2.0 * (y_before - y_min) / (y_max - y_min) - 1.0,
            2.0 * (x_before - x_min) / (x_max - x_min) - 1.0,
        ],
        dim=-1,
    )
    return functional.grid_sample(
        previous_bev, grid, mode='bilinear', padding_mode='zeros', align_corners=False
    )
