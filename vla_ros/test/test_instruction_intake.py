"""InstructionIntake: newest wins, unreadable text refused, the encoder never blocks a caller."""

import math
import threading
import time

import numpy as np
import pytest

from vla_model.instruction_encoder import check_instruction
from vla_planning.instruction_intake import (
    GivenInstruction,
    InstructionInForce,
    InstructionIntake,
    refusal,
)


@pytest.mark.parametrize(
    ('text', 'reason'),
    [
        ('Take the next exit.', ''),
        ('go 60 km/h', ''),
        ('', ''),  # no request: the default instruction
        ('左转，然后在下一个出口离开', 'not English'),
        ('🚗' * 50, 'mostly symbols or emoji'),
        ('!!! ??? ### 12345 ***', 'mostly symbols or emoji'),
        ('\x1b\x07\x00\x7f', 'empty once control characters are removed'),
    ],
)
def test_text_the_encoder_cannot_read_is_refused_with_its_reason(text, reason):
    found = refusal(text, check_instruction(text))
    assert (reason in found) if reason else found == ''


def vector(text: str) -> np.ndarray:
    return np.full(4, float(len(text)), np.float32)


def given(id_: str, text: str) -> GivenInstruction:
    return GivenInstruction(id_, text, 0)


def test_a_refused_instruction_leaves_the_understood_one_in_force():
    understood: list[InstructionInForce] = []
    refused: list[tuple[str, str]] = []
    intake = InstructionIntake(
        vector, understood.append, lambda g, reason: refused.append((g.id, reason))
    )
    assert intake.process() is None  # nothing given: the default instruction stays
    intake.submit(given('a', 'Keep your lane.'))
    assert intake.process().given.id == 'a'
    intake.submit(given('cn', '请在下一个出口离开'))
    in_force = intake.process()
    assert in_force.given.id == 'a' and [u.given.id for u in understood] == ['a']
    assert refused == [
        ('cn', refusal('请在下一个出口离开', check_instruction('请在下一个出口离开')))
    ]
    assert (intake.refused, intake.understood) == (1, 1)
    assert intake.last_refused.startswith('cn: mostly non-ASCII letters')


def test_while_the_encoder_works_submitting_never_waits_and_the_newest_wins():
    release = threading.Event()
    encoding: list[str] = []

    def slow_encoder(text: str) -> np.ndarray:
        encoding.append(text)
        release.wait(10.0)
        return vector(text)

    understood: list[str] = []
    intake = InstructionIntake(slow_encoder, lambda u: understood.append(u.given.id))
    stop = threading.Event()
    worker = threading.Thread(target=intake.serve, args=(stop, 0.01))
    worker.start()
    try:
        intake.submit(given('first', 'Keep your lane.'))
        while not encoding:  # the worker is now inside the encoder, held there
            time.sleep(0.01)
        for index in range(50):  # a flood while the encoder is busy: each returns at once
            intake.submit(given(f'flood-{index}', f'Change to lane number {index}.'))
            assert not release.is_set()
        release.set()
        for _ in range(1000):
            if not intake.pending and len(understood) == 2:
                break
            time.sleep(0.01)
    finally:
        stop.set()
        worker.join(5.0)
    assert understood == ['first', 'flood-49']  # the 49 in between were never embedded
    assert (intake.received, intake.superseded, intake.understood) == (51, 49, 2)
    assert encoding == ['Keep your lane.', 'Change to lane number 49.']


def test_a_flood_is_embedded_at_most_once_per_interval_and_the_newest_still_wins():
    encoded: list[str] = []

    def encoder(text: str) -> np.ndarray:
        encoded.append(text)
        return vector(text)

    intake = InstructionIntake(encoder, lambda understood: None)
    stop = threading.Event()
    worker = threading.Thread(target=intake.serve, args=(stop, 0.01, 0.1))
    worker.start()
    try:
        for index in range(50):  # 50 instructions over about 0.5 s
            intake.submit(given(f'{index}', f'Hold {index + 40} km/h.'))
            time.sleep(0.01)
        for _ in range(100):
            if not intake.pending:
                break
            time.sleep(0.05)
    finally:
        stop.set()
        worker.join(5.0)
    assert len(encoded) <= 1 + math.ceil(0.5 / 0.1) + 2  # one per 0.1 s, with scheduling slack
    assert encoded[-1] == 'Hold 89 km/h.'
    assert intake.superseded == 50 - len(encoded)
