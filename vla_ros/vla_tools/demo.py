"""`vla demo`, the main job: the shipped model drives the simulator through the whole pipeline.

Every nominal scenario and three long-tail ones, one held-out seed each, with held-out
instruction paraphrases, the safety monitor enforcing and no map prior (a vehicle without an HD
map). The drive runs the nodes' cores in lockstep in one process (`vla sim eval --driver
pipeline`); `vla run sim` runs the same pipeline as nodes over DDS. The report (metrics table,
trajectory and speed plots, one GIF per episode of the cameras, ground truth, neural map, plan
and safety state) goes to one folder, and one summary line to the terminal.
"""

import argparse
import json
import time
from pathlib import Path

from vla_sim.sim_eval_command import run_sim_eval

DEMO_SCENARIOS = (
    'highway',
    'merge',
    'roundabout',
    'intersection',
    'exit',
    'stalled_vehicle',
    'hard_braking_lead',
    'cut_in',
)
DEMO_SEED = 100  # held out: training used seeds 0-19 and 200-212 (models/MODEL_CARD.md)


def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    """Add `vla demo`'s arguments."""
    parser.add_argument(
        '--report', type=Path, default=Path('report/demo'), help='report folder (report/demo)'
    )
    parser.add_argument(
        '--scenarios',
        nargs='+',
        default=list(DEMO_SCENARIOS),
        help=f'scenarios to drive (default: {" ".join(DEMO_SCENARIOS)})',
    )
    parser.add_argument('--episodes', type=int, default=1, help='seeded episodes per scenario')
    parser.add_argument('--seed', type=int, default=DEMO_SEED, help='first seed (default 100)')


def summary_line(episodes: list[dict], report: Path, seconds: float) -> str:
    """Return the demo's one-line summary of the episodes in metrics.json."""
    count = len(episodes)
    collisions = sum(e['collision'] for e in episodes)
    off_road = sum(e['off_road'] for e in episodes)
    followed = sum(e['instruction_success'] for e in episodes)
    metres = sum(e['progress_m'] for e in episodes)
    interventions = sum(e['interventions'] for e in episodes)
    return (
        f'demo: {count} episodes driven by the shipped model with the safety monitor: '
        f'{collisions} collision(s), {off_road} off-road, {followed}/{count} instructions '
        f'followed, {metres:.0f} m driven, {interventions} monitor interventions; '
        f'report in {report}/report.md ({seconds:.0f} s)'
    )


def run_demo(args: argparse.Namespace) -> int:
    """Drive the demo episodes, write the report, print the summary line."""
    start = time.monotonic()
    evaluation = argparse.Namespace(
        driver='pipeline',
        weights=None,
        untrained=False,
        sha256=None,
        monitor='enforce',
        map_prior='off',
        scenarios=args.scenarios,
        episodes=args.episodes,
        seed_start=args.seed,
        split='test',
        rig=None,
        json=None,
        report=args.report,
        films=args.episodes,
        workers=1,  # every episode is filmed: its frames stay in this process
    )
    code = run_sim_eval(evaluation, prog='vla demo')
    if code != 0:
        return code
    metrics = json.loads((args.report / 'metrics.json').read_text(encoding='utf-8'))
    print(summary_line(metrics['episodes'], args.report, time.monotonic() - start))
    return 0
