"""Which instruction is in force: newest wins, unreadable text refused, embedded off-frame.

An operator may send instructions faster than the encoder embeds them (tens of milliseconds
each on a CPU), and text the English-only encoder cannot read gives an embedding the model
plans nonsense from. So the subscription only hands each instruction over (`submit`, which never
waits for the encoder); a worker embeds the newest one (`process` or `serve`), and older ones
still waiting are dropped and counted. Text that is not English, mostly symbols, or empty once
cleaned is refused with its reason, and the last understood instruction (or the default) stays
in force. The worker embeds at most one instruction per `MIN_ENCODE_INTERVAL_S`. ROS-free: the
inference node runs `serve` on its own thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from vla_model.instruction_encoder import InstructionCheck, check_instruction

MIN_LETTER_SHARE = 0.5
"""Text whose visible characters are less than half letters is symbols or emoji, not words."""
MIN_ENCODE_INTERVAL_S = 0.1
"""The worker embeds at most one instruction per this interval; newer ones wait and supersede.

No operator gives ten instructions a second, and each embedding takes CPU from the frames on a
small computer: a flood then costs at most one embedding per interval."""


@dataclass(frozen=True)
class GivenInstruction:
    """An instruction as the operator sent it."""

    id: str
    text: str
    given_ns: int  # its message's stamp; 0: when the next frame comes


@dataclass(frozen=True)
class InstructionInForce:
    """An understood instruction, embedded, that the model plans with."""

    given: GivenInstruction
    check: InstructionCheck
    embedding: np.ndarray


def refusal(text: str, check: InstructionCheck) -> str:
    """Why the encoder cannot understand `text` ('' when it can; empty text means the default)."""
    if check.empty:
        return 'empty once control characters are removed' if text.strip() else ''
    if check.mostly_non_ascii:
        return 'mostly non-ASCII letters: not English, which the encoder reads'
    visible = [c for c in check.text if not c.isspace()]
    letters = sum(c.isalpha() for c in visible)
    if letters < MIN_LETTER_SHARE * len(visible):
        return f'mostly symbols or emoji ({letters} letters in {len(visible)} characters)'
    return ''


class InstructionIntake:
    """Newest-wins hand-off of instructions to the encoder, with counts for diagnostics."""

    def __init__(
        self,
        encode: Callable[[str], np.ndarray],
        on_understood: Callable[[InstructionInForce], None],
        on_refused: Callable[[GivenInstruction, str], None] = lambda given, reason: None,
    ) -> None:
        self._encode = encode
        self._on_understood = on_understood
        self._on_refused = on_refused
        self._lock = threading.Condition()
        self._pending: GivenInstruction | None = None
        self.received = self.superseded = self.refused = self.understood = 0
        self.last_refused = ''  # "id: reason" of the last refused instruction
        self.in_force: InstructionInForce | None = None  # None: the default instruction

    def submit(self, given: GivenInstruction) -> None:
        """Hand an instruction over; one still waiting for the encoder is dropped (counted)."""
        with self._lock:
            self.received += 1
            if self._pending is not None:
                self.superseded += 1
            self._pending = given
            self._lock.notify()

    @property
    def pending(self) -> bool:
        """An instruction waits for the encoder."""
        return self._pending is not None

    def process(self) -> InstructionInForce | None:
        """Decide on the newest waiting instruction: embed it, or refuse it; None if none waits.

        Returns the instruction in force afterwards (None before any was understood).
        """
        with self._lock:
            given, self._pending = self._pending, None
        if given is None:
            return self.in_force
        check = check_instruction(given.text)
        reason = refusal(given.text, check)
        if reason:
            self.refused += 1
            self.last_refused = f'{given.id}: {reason}'
            self._on_refused(given, reason)
            return self.in_force
        self.in_force = InstructionInForce(given, check, self._encode(check.text))
        self.understood += 1
        self._on_understood(self.in_force)
        return self.in_force

    def serve(
        self,
        stop: threading.Event,
        poll_s: float = 0.1,
        min_interval_s: float = MIN_ENCODE_INTERVAL_S,
    ) -> None:
        """Process instructions as they come until `stop` is set (the worker thread's loop)."""
        while not stop.is_set():
            with self._lock:
                if self._pending is None:
                    self._lock.wait(poll_s)
            if self._pending is not None:
                self.process()
                stop.wait(min_interval_s)
