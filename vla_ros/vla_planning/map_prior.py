"""The map-prior input of a frame: HD-map layers on the BEV grid, matched to the frame by stamp.

A map server (or the simulator) publishes each layer of MAP_PRIOR_LAYERS as an OccupancyGrid in
base_link at some stamp. The layers are rasterised around where the vehicle was at that stamp,
so a frame uses only a complete set of the layers its model takes (`ModelConfig.map_prior_layers`;
the others are ignored) stamped within `max_offset_s` of its own stamp (at 25 m/s, 50 ms is
1.25 m, one cell); otherwise it plans map-free. ROS-free: the node feeds it messages.
"""

from collections import OrderedDict

import numpy as np

from vla_model.config import MAP_PRIOR_LAYERS, ModelConfig
from vla_model.driving_labels import occupancy_mask
from vla_perception.synchronizer import stamp_to_ns, to_ns

KEPT_STAMPS = 8


class MapPriorBuffer:
    """The most recent map-prior layers per stamp."""

    def __init__(self, config: ModelConfig, max_offset_s: float) -> None:
        self.config = config
        self.max_offset_ns = to_ns(max_offset_s)
        self._by_stamp: OrderedDict[int, dict[str, np.ndarray]] = OrderedDict()

    def add(self, layer: str, message: object) -> None:
        """Take one layer's OccupancyGrid; raise ValueError if it is not on the model's grid."""
        if layer not in MAP_PRIOR_LAYERS:
            raise ValueError(f'unknown map layer {layer!r}; known: {", ".join(MAP_PRIOR_LAYERS)}')
        if layer not in self.config.map_prior_layers:
            return  # a layer this model does not take (a newer map server's)
        if message.header.frame_id != 'base_link':
            raise ValueError(
                f'map layer {layer} is in frame {message.header.frame_id!r}, not base_link'
            )
        mask = occupancy_mask(message, self.config)
        if mask is None:
            rows, cols = self.config.bev_size
            raise ValueError(
                f'map layer {layer}: the grid is not the model BEV grid ({rows} x {cols} cells '
                f'of {self.config.bev_cell_m} m from x {self.config.bev_x_range[0]} m, '
                f'y {self.config.bev_y_range[0]} m, in base_link)'
            )
        stamp_ns = stamp_to_ns(message.header.stamp)
        self._by_stamp.setdefault(stamp_ns, {})[layer] = mask
        self._by_stamp.move_to_end(stamp_ns)
        while len(self._by_stamp) > KEPT_STAMPS:
            self._by_stamp.popitem(last=False)

    def at(self, stamp_ns: int) -> np.ndarray | None:
        """Return the (layers, rows, cols) prior nearest `stamp_ns`, if complete and near."""
        complete = [
            stamp
            for stamp, layers in self._by_stamp.items()
            if len(layers) == self.config.map_prior_channels
            and abs(stamp - stamp_ns) <= self.max_offset_ns
        ]
        if not complete:
            return None
        nearest = self._by_stamp[min(complete, key=lambda stamp: abs(stamp - stamp_ns))]
        return np.stack([nearest[layer] for layer in self.config.map_prior_layers]).astype(
            np.float32
        )
