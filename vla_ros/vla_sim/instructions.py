"""Natural-language driving instructions for the simulator's scenarios.

A scenario gives the ego vehicle an intent. The VLA model only sees the instruction text (published
as a vla_msgs/Instruction); the privileged expert driver follows the structured `Intent` and,
for SET_SPEED, the target speed the text says. Each intent has many paraphrases so the model
learns the intent rather than one sentence, and the paraphrases are split once, by hand, into
train, validation and test: test wording is never seen in training, so evaluation measures how
well the model understands instructions phrased in ways it was not trained on.

Texts that name a lane change say "one lane" or "the next lane" because the expert changes one
lane; SET_SPEED texts do not say "slow down" or "speed up" because the generator does not know the
current speed, and a wrong direction word would contradict the target.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from enum import Enum


class Intent(Enum):
    """What the instruction asks of the ego vehicle; the expert driver acts on this."""

    KEEP_LANE = 'keep_lane'
    CHANGE_LANE_LEFT = 'change_lane_left'
    CHANGE_LANE_RIGHT = 'change_lane_right'
    TAKE_EXIT = 'take_exit'
    SET_SPEED = 'set_speed'  # slow down or speed up to a target speed
    PULL_OVER = 'pull_over'  # reach the rightmost lane and stop in it
    STOP_BEHIND_LEAD = 'stop_behind_lead'
    FOLLOW_LEAD = 'follow_lead'


class Split(Enum):
    """Which data set a paraphrase belongs to; fixed, so test wording never leaks into training."""

    TRAIN = 'train'
    VALIDATION = 'validation'
    TEST = 'test'


SPEED_SLOT = '{speed}'
"""Placeholder in SET_SPEED templates for the target speed in whole km/h, as digits."""
SPEED_STEP_KMH = 5
"""People say round speeds: the target is rounded to the nearest multiple of this for the text."""

_TRAIN, _VALIDATION, _TEST = Split.TRAIN, Split.VALIDATION, Split.TEST

# Per intent ~70/15/15 (9/2/2). Ids are the position in the intent's tuple: append new
# paraphrases at the end so existing ids stay stable.
_TEMPLATES: dict[Intent, tuple[tuple[Split, str], ...]] = {
    Intent.KEEP_LANE: (
        (_TRAIN, 'Keep your lane.'),
        (_TRAIN, 'stay in this lane'),
        (_TRAIN, 'Stay in your lane, please.'),
        (_TRAIN, 'just keep going in this lane'),
        (_TRAIN, 'Hold your lane.'),
        (_TRAIN, 'no lane changes, keep going straight'),
        (_TRAIN, 'Could you stay in the lane you are in?'),
        (_TRAIN, 'follow the lane'),  # the model's reading of an empty instruction
        (_TRAIN, 'Carry on in this lane and go with the traffic.'),
        (_VALIDATION, 'Remain in the current lane.'),
        (_VALIDATION, "let's just stay in this lane for now"),
        (_TEST, 'Keep driving in the lane you are in, please.'),
        (_TEST, 'lane keep'),
    ),
    Intent.CHANGE_LANE_LEFT: (
        (_TRAIN, 'Change one lane to the left.'),
        (_TRAIN, 'move one lane left'),
        (_TRAIN, 'Could you get into the lane on your left, please?'),
        (_TRAIN, 'lane change left'),
        (_TRAIN, 'Switch to the lane on your left.'),
        (_TRAIN, 'go left one lane when it is clear'),
        (_TRAIN, 'Please move over one lane to the left.'),
        (_TRAIN, 'merge into the next lane on the left'),
        (_TRAIN, 'shift over a lane to the left'),
        (_VALIDATION, 'Move into the adjacent lane on the left.'),
        (_VALIDATION, 'can you slide over one lane to the left?'),
        (_TEST, 'Get over one lane to the left, please.'),
        (_TEST, 'next lane left, when you can'),
    ),
    Intent.CHANGE_LANE_RIGHT: (
        (_TRAIN, 'Change one lane to the right.'),
        (_TRAIN, 'move one lane right'),
        (_TRAIN, 'Could you get into the lane on your right, please?'),
        (_TRAIN, 'lane change right'),
        (_TRAIN, 'Switch to the lane on your right.'),
        (_TRAIN, 'go right one lane when it is clear'),
        (_TRAIN, 'Please move over one lane to the right.'),
        (_TRAIN, 'merge into the next lane on the right'),
        (_TRAIN, 'shift over a lane to the right'),
        (_VALIDATION, 'Move into the adjacent lane on the right.'),
        (_VALIDATION, 'can you slide over one lane to the right?'),
        (_TEST, 'Get over one lane to the right, please.'),
        (_TEST, 'next lane right, when you can'),
    ),
    Intent.TAKE_EXIT: (
        (_TRAIN, 'Take the next exit.'),
        (_TRAIN, 'take the exit'),
        (_TRAIN, 'Could you take the exit coming up, please?'),
        (_TRAIN, 'get off the highway at the next exit'),
        (_TRAIN, 'Leave the motorway at the upcoming exit.'),
        (_TRAIN, 'exit here'),
        (_TRAIN, 'we are getting off at this exit'),
        (_TRAIN, 'Head for the exit ramp and take it.'),
        (_TRAIN, 'next exit, please'),
        (_VALIDATION, 'Use the upcoming off-ramp.'),
        (_VALIDATION, 'we need this exit, can you take it?'),
        (_TEST, 'Leave at the next exit, please.'),
        (_TEST, 'take the off-ramp ahead'),
    ),
    Intent.SET_SPEED: (
        (_TRAIN, 'Set your speed to {speed} km/h.'),
        (_TRAIN, 'go {speed}'),
        (_TRAIN, 'drive at {speed} km/h'),
        (_TRAIN, 'Could you do {speed} kilometres per hour, please?'),
        (_TRAIN, 'target speed {speed} km/h'),
        (_TRAIN, 'Adjust your speed to {speed} km/h.'),
        (_TRAIN, 'keep it at {speed}'),
        (_TRAIN, 'Bring the speed to {speed} km/h, please.'),
        (_TRAIN, '{speed} km/h from here on'),
        (_VALIDATION, 'Change speed to {speed} kph.'),
        (_VALIDATION, "let's go {speed} km/h"),
        (_TEST, 'Please drive {speed} kilometres an hour.'),
        (_TEST, 'make it {speed}'),
    ),
    Intent.PULL_OVER: (
        (_TRAIN, 'Pull over.'),
        (_TRAIN, 'pull over and stop'),
        (_TRAIN, 'Could you pull over on the right, please?'),
        (_TRAIN, 'stop on the right'),
        (_TRAIN, 'Move to the rightmost lane and stop there.'),
        (_TRAIN, 'find a place on the right and stop'),
        (_TRAIN, 'Please pull over to the right and come to a stop.'),
        (_TRAIN, 'get over to the right and stop'),
        (_TRAIN, 'we need to stop, pull over'),
        (_VALIDATION, 'Pull over to the side, please.'),
        (_VALIDATION, 'can you stop over on the right?'),
        (_TEST, 'Move all the way right and stop the car.'),
        (_TEST, 'pull over here please'),
    ),
    Intent.STOP_BEHIND_LEAD: (
        (_TRAIN, 'Stop behind the vehicle in front.'),
        (_TRAIN, 'stop behind that vehicle'),
        (_TRAIN, 'Could you stop behind the vehicle ahead, please?'),
        (_TRAIN, 'come to a stop behind the lead vehicle'),
        (_TRAIN, 'Pull up behind the vehicle in front and stop.'),
        (_TRAIN, 'stop behind the vehicle ahead of us'),
        (_TRAIN, 'Please halt behind the vehicle ahead.'),
        (_TRAIN, 'brake to a stop behind whatever is in front of you'),
        (_TRAIN, 'stop when you get to the vehicle ahead'),
        (_VALIDATION, 'Stop short of the vehicle in front.'),
        (_VALIDATION, 'can you stop behind this one?'),
        (_TEST, 'Bring us to a halt behind the vehicle ahead.'),
        (_TEST, 'stop behind the one in front'),
    ),
    Intent.FOLLOW_LEAD: (
        (_TRAIN, 'Follow the vehicle ahead.'),
        (_TRAIN, 'follow the one in front'),
        (_TRAIN, 'Could you follow the vehicle in front of us, please?'),
        (_TRAIN, 'stay behind the vehicle ahead'),
        (_TRAIN, 'Keep following the lead vehicle.'),
        (_TRAIN, 'tail the vehicle in front at a safe distance'),
        (_TRAIN, 'Please keep a safe gap to the vehicle ahead and follow it.'),
        (_TRAIN, 'go with the vehicle in front'),
        (_TRAIN, 'follow whoever is ahead of us'),
        (_VALIDATION, 'Stick behind the vehicle in front.'),
        (_VALIDATION, 'just follow the one ahead, ok?'),
        (_TEST, 'Keep behind the vehicle ahead and follow it.'),
        (_TEST, 'follow the lead'),
    ),
}


@dataclass(frozen=True)
class Paraphrase:
    """One wording of an intent; SET_SPEED templates hold SPEED_SLOT for the number."""

    intent: Intent
    index: int  # position among the intent's paraphrases
    template: str
    split: Split

    @property
    def paraphrase_id(self) -> str:
        """Stable id such as 'set_speed/3', for logs and data set records."""
        return f'{self.intent.value}/{self.index}'

    def render(self, kmh: int | None) -> str:
        """Return the text, with the speed in km/h filled in for SET_SPEED."""
        return self.template if kmh is None else self.template.replace(SPEED_SLOT, str(kmh))


ALL_PARAPHRASES: tuple[Paraphrase, ...] = tuple(
    Paraphrase(intent, index, template, split)
    for intent, entries in _TEMPLATES.items()
    for index, (split, template) in enumerate(entries)
)
"""Every paraphrase, by intent then id."""


def paraphrases(intent: Intent, split: Split) -> tuple[Paraphrase, ...]:
    """Return the paraphrases of an intent that belong to a split, in id order."""
    return tuple(p for p in ALL_PARAPHRASES if p.intent is intent and p.split is split)


@dataclass(frozen=True)
class InstructionSample:
    """An instruction for one episode: the text for the model and the intent for the expert."""

    intent: Intent
    text: str
    target_speed_mps: float | None  # SET_SPEED only: the speed the text says, not the request
    split: Split
    paraphrase_id: str


def _spoken_kmh(target_speed_mps: float) -> int:
    """Round a target speed to the nearest SPEED_STEP_KMH km/h (ties up), as people say it."""
    kmh = 0  # NaN and infinity are refused like a speed too low to say
    if math.isfinite(target_speed_mps):
        kmh = math.floor(target_speed_mps * 3.6 / SPEED_STEP_KMH + 0.5) * SPEED_STEP_KMH
    if kmh < SPEED_STEP_KMH:
        raise ValueError(
            f'SET_SPEED needs a finite target speed of at least {SPEED_STEP_KMH} km/h after '
            f'rounding, got target_speed_mps={target_speed_mps}'
        )
    return kmh


class InstructionGenerator:
    """Draws instructions from one split's paraphrases, reproducibly for a seed.

    The same seed and the same sequence of `sample` calls give the same instructions, so a
    scenario set (and its evaluation) can be regenerated exactly.
    """

    def __init__(self, split: Split, seed: int) -> None:
        self.split = split
        self._rng = random.Random(seed)

    def sample(self, intent: Intent, target_speed_mps: float | None = None) -> InstructionSample:
        """Return an instruction; SET_SPEED needs target_speed_mps, other intents refuse one.

        The SET_SPEED text says the target rounded to SPEED_STEP_KMH km/h, and the sample stores
        that rounded speed in m/s, so the expert tracks exactly what the model was told.
        """
        if intent is Intent.SET_SPEED:
            if target_speed_mps is None:
                raise ValueError(f'{intent.name} needs target_speed_mps')
            kmh = _spoken_kmh(target_speed_mps)
        elif target_speed_mps is not None:
            raise ValueError(
                f'{intent.name} takes no target speed, got target_speed_mps={target_speed_mps}'
            )
        else:
            kmh = None
        paraphrase = self._rng.choice(paraphrases(intent, self.split))
        return InstructionSample(
            intent=intent,
            text=paraphrase.render(kmh),
            target_speed_mps=None if kmh is None else kmh / 3.6,
            split=self.split,
            paraphrase_id=paraphrase.paraphrase_id,
        )
