"""Sizes of the driving model: a small default student and a larger teacher.

The configuration travels with the weights (safetensors metadata), so a checkpoint always says
what network it belongs to.
"""

import json
from dataclasses import asdict, dataclass, replace

from vla_model.instruction_features import SPEED_SLOT_DIM

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

MAP_PRIOR_LAYERS = ('lane_centreline', 'drivable', 'route_lanes')
"""Layers of the optional map-prior input: an HD map and the route planned on it, rasterised on
the BEV grid in base_link; a model takes the first `map_prior_channels` (v1 and the first v2:
two, without the route, so at a junction they could not tell which way to leave)."""

PRIVILEGED_CHANNELS = (
    'drivable',
    'lane_marking',
    'lane_centreline',
    'vehicle',
    'vehicle_vx',
    'vehicle_vy',
    'route_lanes',
    'exit_lane',
)
"""The privileged teacher's ground-truth raster (vla_sim.privileged_bev), in order: 0/1 masks,
except VELOCITY_CHANNELS, each vehicle's velocity in base_link in VELOCITY_SCALE_MPS units."""
VELOCITY_CHANNELS = ('vehicle_vx', 'vehicle_vy')
VELOCITY_SCALE_MPS = 10.0

EGO_STATE_FIELDS = ('speed_mps', 'yaw_rate_rps', 'acceleration_mps2', 'instruction_age_s')
"""The ego-state input, in order; a model takes the first `ego_state_dim`. The instruction's age
(since it was given, capped at MAX_INSTRUCTION_AGE_S) tells "change lane" just said from the same
words after the change is done, which a memoryless policy cannot tell from the scene."""
MAX_INSTRUCTION_AGE_S = 10.0


@dataclass(frozen=True)
class ModelConfig:
    """Everything that fixes the network's shapes."""

    name: str = 'vla-student'
    num_cameras: int = 6
    image_height: int = 256  # px, the SensorFrame output size
    image_width: int = 448
    backbone_channels: tuple[int, ...] = (24, 48, 64)  # stem, then stride 2 each: 16 px a cell
    stem_stride: int = 4  # the patchify stem's kernel and stride, px (8: a quarter of the pixels)
    bev_channels: int = 64
    # BEV grid in base_link (x forward, y left), metres; cell centres at min + (i + 0.5) * cell.
    bev_x_range: tuple[float, float] = (-16.0, 48.0)
    bev_y_range: tuple[float, float] = (-24.0, 24.0)
    bev_cell_m: float = 1.0
    lut_heights_m: tuple[float, ...] = (0.0, 1.0)  # heights above base_link sampled per cell
    # Samples kept per cell: 0 keeps one per camera and height (v1), n only the n that see the
    # cell (a cell is seen by a few of them; the gather is a third of the BEV lift's time).
    lut_samples: int = 0
    # 0: a cell averages the features of the samples that see it (v1); n: each sample also
    # counts by the probability the backbone gives its pixel of lying at the cell's distance,
    # in n bins spaced evenly in log distance (Lift-Splat-Shoot's lift, done as a gather), so a
    # car 20 m ahead is not drawn on every cell its pixels also see behind it
    depth_bins: int = 0
    instruction_dim: int = 384  # all-MiniLM-L6-v2 sentence embedding
    speed_slot: bool = False  # a speed said in the text, parsed (vla_model.instruction_features)
    # the first MAP_PRIOR_LAYERS: v1 and the first v2 take two, a v2 student since 2026-12-07
    # all three (student_network.student_v2)
    map_prior_channels: int = 2
    num_anchors: int = 16
    horizon_steps: int = 6
    step_s: float = 0.5  # trajectory points every step_s, up to horizon_steps * step_s
    planner_hidden: int = 256
    # pooled: v1's planner on the pooled BEV features; neural_map: v2's, the privileged teacher
    # reading the network's own neural map (vla_model.student_network)
    planner: str = 'pooled'
    # neural_map only: where the map prior is given, the planner reads its layers (the HD map's
    # truth, and the route) in place of the network's own drawing of them; v2 since 2026-12-07
    planner_reads_map_prior: bool = False
    rationales: tuple[str, ...] = RATIONALES
    bev_classes: tuple[str, ...] = BEV_CLASSES
    ego_state_dim: int = 3  # the first EGO_STATE_FIELDS: v1 takes speed, yaw rate, acceleration
    # v2: the training texts and intents of its planner's instruction grounding
    # (vla_model.instruction_grounding), as in the teacher it was distilled from; 0: none.
    grounding_texts: int = 0
    grounding_intents: int = 0

    def __post_init__(self) -> None:
        if not 1 <= self.map_prior_channels <= len(MAP_PRIOR_LAYERS):
            raise ValueError(
                f'map_prior_channels is {self.map_prior_channels}; the map prior has '
                f'1 to {len(MAP_PRIOR_LAYERS)} layers ({", ".join(MAP_PRIOR_LAYERS)})'
            )
        if self.planner_reads_map_prior and self.planner != 'neural_map':
            raise ValueError('planner_reads_map_prior needs the neural_map planner')

    @property
    def instruction_input_dim(self) -> int:
        """Width of the network's instruction input: the embedding and, if used, the slot."""
        return self.instruction_dim + (SPEED_SLOT_DIM if self.speed_slot else 0)

    @property
    def map_prior_layers(self) -> tuple[str, ...]:
        """The MAP_PRIOR_LAYERS this network takes, in its input's order."""
        return MAP_PRIOR_LAYERS[: self.map_prior_channels]

    @property
    def feature_stride(self) -> int:
        """Pixels of input image per backbone feature cell."""
        return self.stem_stride * 2 ** (len(self.backbone_channels) - 1)

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
        """Look-up-table samples per BEV cell: `lut_samples`, or one per camera and height."""
        return self.lut_samples or self.num_cameras * len(self.lut_heights_m)

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
