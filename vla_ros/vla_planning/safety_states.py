"""The safety monitor's state machine: NOMINAL -> DEGRADED -> OVERRIDE -> MINIMAL_RISK.

Pure: `update(verdict, now_s, has_valid_plan)` once per monitor cycle, with the most severe
verdict of the cycle's rules. Going to a more severe state is immediate. Going back needs
`relax_cycles` consecutive cycles that ask for less (hysteresis, so the state does not flap).
OVERRIDE holds the last valid plan for at most `max_hold_s` (and is impossible without one);
then it becomes MINIMAL_RISK. MINIMAL_RISK is latched: it clears only after `clear_cycles`
consecutive clean (PASS) cycles. An EMERGENCY verdict makes the minimal-risk stop an emergency
stop until the latch clears.
"""

from dataclasses import dataclass
from enum import IntEnum

from vla_planning.safety_rules import Verdict


class SafetyState(IntEnum):
    """Monitor states; the values are vla_msgs/SafetyStatus.STATE_*."""

    NOMINAL = 0
    DEGRADED = 1
    OVERRIDE = 2
    MINIMAL_RISK = 3


TARGET = {
    Verdict.PASS: SafetyState.NOMINAL,
    Verdict.DEGRADE: SafetyState.DEGRADED,
    Verdict.OVERRIDE: SafetyState.OVERRIDE,
    Verdict.MINIMAL_RISK: SafetyState.MINIMAL_RISK,
    Verdict.EMERGENCY: SafetyState.MINIMAL_RISK,
}
"""The state each verdict asks for."""


@dataclass(frozen=True)
class StateMachineConfig:
    """Timing of the state machine (10 Hz monitor cycles)."""

    relax_cycles: int = 3  # 0.3 s of calmer verdicts before stepping down
    clear_cycles: int = 10  # 1.0 s of clean cycles to clear a minimal-risk latch
    max_hold_s: float = 1.0  # longest hold of the last valid plan [Autoware validator: 1.0 s]


class SafetyStateMachine:
    """Track the monitor's state from each cycle's most severe verdict."""

    def __init__(self, config: StateMachineConfig = StateMachineConfig()) -> None:
        self.config = config
        self.state = SafetyState.NOMINAL
        self.emergency = False
        self.clean_cycles = 0  # consecutive PASS cycles
        self._calmer_cycles = 0  # consecutive cycles asking for less than the current state
        self._calmer_target = SafetyState.NOMINAL  # the most severe of those requests
        self._override_since_s: float | None = None

    @property
    def latched(self) -> bool:
        """Whether a minimal-risk manoeuvre is latched."""
        return self.state == SafetyState.MINIMAL_RISK

    def update(self, verdict: Verdict, now_s: float, has_valid_plan: bool) -> SafetyState:
        """Advance one cycle and return the new state."""
        target = TARGET[verdict]
        self.clean_cycles = self.clean_cycles + 1 if verdict == Verdict.PASS else 0
        if target == SafetyState.OVERRIDE and not has_valid_plan:
            target = SafetyState.MINIMAL_RISK  # nothing to hold: stop
        if target >= self.state:
            self._enter(target, now_s)
            self._calmer_cycles = 0
        elif self.state == SafetyState.MINIMAL_RISK:
            if self.clean_cycles >= self.config.clear_cycles:
                self._enter(SafetyState.NOMINAL, now_s)
        else:
            self._calmer_target = (
                target if self._calmer_cycles == 0 else max(self._calmer_target, target)
            )
            self._calmer_cycles += 1
            if self._calmer_cycles >= self.config.relax_cycles:
                self._enter(self._calmer_target, now_s)
                self._calmer_cycles = 0
        if verdict == Verdict.EMERGENCY:
            self.emergency = True
        if self.state == SafetyState.OVERRIDE and (
            not has_valid_plan or now_s - self._override_since_s > self.config.max_hold_s
        ):
            self._enter(SafetyState.MINIMAL_RISK, now_s)
        return self.state

    def demand_emergency(self) -> None:
        """Make the minimal-risk stop an emergency stop (only meaningful in MINIMAL_RISK)."""
        if self.state == SafetyState.MINIMAL_RISK:
            self.emergency = True

    def _enter(self, state: SafetyState, now_s: float) -> None:
        if state == SafetyState.OVERRIDE and self.state != SafetyState.OVERRIDE:
            self._override_since_s = now_s
        if state != SafetyState.MINIMAL_RISK:
            self.emergency = False
        self.state = state
