"""The model's instruction input: the sentence embedding, plus a spoken speed read as a number.

A sentence encoder places "make it 55" and "make it 70" almost on top of each other: it is
trained for meaning, and the digits of a number barely move the embedding. A speed the driver
must hold to within 1.5 m/s cannot be read from it, least of all in wording the model never
saw. So the number is parsed from the text (digits with an optional unit; a bare number is km/h,
as people say speeds to a car) and given to the network beside the embedding, as the slot
filling of task-oriented dialogue does: the embedding says what is asked, the slot says how much.
"""

from __future__ import annotations

import re

import numpy as np

SPEED_SLOT_DIM = 2
"""Slot features after the embedding: (a speed was said: 0/1, that speed / SPEED_SCALE_MPS)."""
SPEED_SCALE_MPS = 30.0
MAX_SPOKEN_SPEED_MPS = 70.0
"""Numbers above this (252 km/h) are not speeds a car is asked to hold: a road number, a time."""

_UNITS_TO_MPS = (
    (
        r'km\s*/\s*h|kph|kmh|km\s+an?\s+hour|km\s+per\s+hour|kilomet(?:er|re)s?(?:\s+an?\s+hour|'
        r'\s+per\s+hour|\s*/\s*h)?',
        1.0 / 3.6,
    ),
    (r'mph|miles?\s+an?\s+hour|miles?\s+per\s+hour', 0.44704),
    (r'm\s*/\s*s|mps|met(?:er|re)s?\s+(?:a|per)\s+second', 1.0),
)
_SPEED = re.compile(
    r'(?<![\w.])(\d+(?:\.\d+)?)\s*('
    + '|'.join(f'(?:{unit})' for unit, _ in _UNITS_TO_MPS)
    + r')?',
    re.IGNORECASE,
)


def spoken_speed_mps(text: str) -> float | None:
    """Return the first speed said in `text` in m/s, or None when it names none.

    Digits followed by km/h (kph, kilometres per hour...), mph or m/s; a bare number counts as
    km/h. Zero, and numbers above MAX_SPOKEN_SPEED_MPS, are not taken as speeds.
    """
    for match in _SPEED.finditer(text):
        value = float(match.group(1))
        factor = 1.0 / 3.6
        if match.group(2):
            unit = match.group(2).lower()
            factor = next(f for pattern, f in _UNITS_TO_MPS if re.fullmatch(pattern, unit, re.I))
        speed = value * factor
        if 0.0 < speed <= MAX_SPOKEN_SPEED_MPS:
            return speed
    return None


def speed_slot(text: str) -> np.ndarray:
    """Return the (SPEED_SLOT_DIM,) float32 slot features of an instruction text."""
    speed = spoken_speed_mps(text)
    if speed is None:
        return np.zeros(SPEED_SLOT_DIM, np.float32)
    return np.array([1.0, speed / SPEED_SCALE_MPS], np.float32)


def instruction_input(embedding: np.ndarray, text: str, speed_slot_used: bool) -> np.ndarray:
    """Return what the network takes for an instruction: the embedding, and the slot if used."""
    embedding = np.asarray(embedding, np.float32)
    if not speed_slot_used:
        return embedding
    return np.concatenate([embedding, speed_slot(text)])
