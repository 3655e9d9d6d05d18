"""The command-line options that choose and build the pipeline driver, shared by `vla sim`.

`vla sim eval` and `vla sim record` both drive episodes with either the privileged expert or the
whole pipeline; the pipeline's model, safety-monitor mode and map prior are chosen the same way
in both. Building the driver loads torch and the model, so it is imported only when one is built.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vla_perception.rig import RigConfig
    from vla_sim.pipeline_driver import PipelineDriver


def add_pipeline_arguments(parser: argparse.ArgumentParser) -> None:
    """Add --weights, --untrained, --sha256, --monitor and --map-prior to `parser`."""
    parser.add_argument(
        '--weights',
        type=Path,
        help='pipeline: student safetensors (default: the shipped model, models/MODEL_CARD.md); '
        'teacher: the teacher safetensors',
    )
    parser.add_argument(
        '--untrained',
        action='store_true',
        help='pipeline: drive an untrained student (seed 0), which the monitor should stop',
    )
    parser.add_argument('--sha256', help='refuse the weights unless they hash to this')
    parser.add_argument(
        '--monitor',
        choices=['enforce', 'log-only'],
        default='enforce',
        help='pipeline, teacher: the safety monitor overrides the model (default), or only '
        'reports',
    )
    parser.add_argument(
        '--map-prior',
        choices=['on', 'off'],
        default='on',
        help='pipeline: give the model the map layers around the ego (default), or drive map-free',
    )


def pipeline_driver(args: argparse.Namespace, rig: RigConfig) -> PipelineDriver:
    """Build the pipeline driver the options ask for; FileNotFoundError without a model."""
    from vla_model.shipped import shipped_model
    from vla_sim.pipeline_driver import PipelineDriver

    weights, sha256 = args.weights, args.sha256
    if args.untrained:
        weights = sha256 = None
    elif weights is None:
        shipped = shipped_model()
        weights, sha256 = shipped.weights_path, shipped.weights_sha256
    return PipelineDriver(
        rig,
        weights=weights,
        weights_sha256=sha256,
        enforce=args.monitor == 'enforce',
        map_prior=args.map_prior == 'on',
    )
