"""Sizes of the driving model: a small default student and a larger teacher.

The configuration travels with the weights (safetensors metadata), so a checkpoint always says
what network it belongs to.
"""

import json
from dataclasses import asdict, dataclass, replace

RATIONALES = (
    'keeping the lane',
    'following the vehicle ahead',
    'slowing down for traffic ahead',
    'stopping for an obstacle in the lane',
    'changing lane to the left',
    'changing lane to the right',
    'taking the exit',
    'adjusting speed as instructed',
)
"""Rationale vocabulary: the class index the model predicts maps to this short text."""

BEV_CLASSES = ('drivable', 'lane_marking', 'vehicle')
"""Channels of the BEV semantics head (the neural map), each an independent probability."""

MAP_PRIOR_LAYERS = ('lane_centreline', 'drivable')
"""Layers of the optional map-prior input: an HD map rasterised on the BEV grid in base_link."""


@dataclass(frozen=True)
class ModelConfig:
    """Everything that fixes the network's shapes."""

    name: str = 'vla-student'
    num_cameras: int = 6
    image_height: int = 256  # px, the SensorFrame output size
    image_width: int = 448
    backbone_channels: tuple[int, ...] = (24, 48, 64)  # stride-4 stem, then stride 2 each: 16
    bev_channels: int = 64
    # BEV grid in base_link (x forward, y left), metres; cell centres at min + (i + 0.5) * cell.
    bev_x_range: tuple[float, float] = (-16.0, 48.0)
    bev_y_range: tuple[float, float] = (-24.0, 24.0)
    bev_cell_m: float = 1.0
    lut_heights_m: tuple[float, ...] = (0.0, 1.0)  # heights above base_link sampled per cell
    instruction_dim: int = 384  # all-MiniLM-L6-v2 sentence embedding
    map_prior_channels: int = len(MAP_PRIOR_LAYERS)
    num_anchors: int = 16
    horizon_steps: int = 6
    step_s: float = 0.5  # trajectory points every step_s, up to horizon_steps * step_s
    planner_hidden: int = 256
    rationales: tuple[str, ...] = RATIONALES
    bev_classes: tuple[str, ...] = BEV_CLASSES
    ego_state_dim: int = 3  # speed m/s, yaw rate rad/s, longitudinal acceleration m/s^2

    @property
    def feature_stride(self) -> int:
        """Pixels of input image per backbone feature cell."""
        return 4 * 2 ** (len(self.backbone_channels) - 1)

    @property
    def feature_size(self) -> tuple[int, int]:
        """(height, width) of the backbone feature map."""
        return self.image_height // self.feature_stride, self.image_width // self.feature_stride

    @property
    def bev_size(self) -> tuple[int, int]:
        """(rows along x, columns along y) of the BEV grid."""
        rows = round((self.bev_x_range[1] - self.bev_x_range[0]) / self.bev_cell_m)
        cols = round((self.bev_y_range[1] - self.bev_y_range[0]) / self.bev_cell_m)
        return rows, cols

    @property
    def samples_per_cell(self) -> int:
        """Look-up-table samples per BEV cell: one per camera and height."""
        return self.num_cameras * len(self.lut_heights_m)

    def to_json(self) -> str:
        """Serialise for checkpoint metadata."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> 'ModelConfig':
        """Inverse of to_json."""
        data = json.loads(text)
        return cls(
            **{
                key: tuple(value) if isinstance(value, list) else value
                for key, value in data.items()
            }
        )


def student(**overrides) -> ModelConfig:
    """Return the default small model that ships and runs on a CPU."""
    return replace(ModelConfig(), **overrides)


def teacher(**overrides) -> ModelConfig:
    """Return a larger model to train first and distil the student from."""
    return replace(
        ModelConfig(
            name='vla-teacher',
            backbone_channels=(48, 96, 128),
            bev_channels=128,
            planner_hidden=512,
        ),
        **overrides,
    )
