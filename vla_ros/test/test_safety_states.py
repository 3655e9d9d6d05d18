"""The safety state machine: every state x every verdict, then hysteresis, hold and latch."""

import pytest
from vla_msgs.msg import SafetyStatus

from vla_planning.safety_rules import Verdict
from vla_planning.safety_states import SafetyState, SafetyStateMachine, StateMachineConfig

NOM, DEG, OVR, MRM = (
    SafetyState.NOMINAL,
    SafetyState.DEGRADED,
    SafetyState.OVERRIDE,
    SafetyState.MINIMAL_RISK,
)
ENTER = {NOM: None, DEG: Verdict.DEGRADE, OVR: Verdict.OVERRIDE, MRM: Verdict.MINIMAL_RISK}
# One cycle from each state (rows) with each verdict (columns: PASS, DEGRADE, OVERRIDE,
# MINIMAL_RISK, EMERGENCY): more severe at once, calmer only after the hysteresis.
TABLE = {
    NOM: (NOM, DEG, OVR, MRM, MRM),
    DEG: (DEG, DEG, OVR, MRM, MRM),
    OVR: (OVR, OVR, OVR, MRM, MRM),
    MRM: (MRM, MRM, MRM, MRM, MRM),
}


def machine_in(state: SafetyState) -> SafetyStateMachine:
    machine = SafetyStateMachine()
    if ENTER[state] is not None:
        machine.update(ENTER[state], 0.0, has_valid_plan=True)
    assert machine.state == state
    return machine


def test_states_are_the_message_constants():
    assert [s.value for s in SafetyState] == [
        SafetyStatus.STATE_NOMINAL,
        SafetyStatus.STATE_DEGRADED,
        SafetyStatus.STATE_OVERRIDE,
        SafetyStatus.STATE_MINIMAL_RISK,
    ]


@pytest.mark.parametrize('state', list(TABLE))
@pytest.mark.parametrize('verdict', list(Verdict))
def test_every_state_with_every_verdict(state, verdict):
    machine = machine_in(state)
    assert machine.update(verdict, 0.1, has_valid_plan=True) == TABLE[state][verdict]
    assert machine.emergency == (verdict == Verdict.EMERGENCY)


def run(machine: SafetyStateMachine, verdicts, start_s: float = 0.1, valid: bool = True):
    return [machine.update(v, start_s + 0.1 * i, valid) for i, v in enumerate(verdicts)]


def test_stepping_down_waits_for_the_hysteresis():
    machine = machine_in(DEG)
    assert run(machine, [Verdict.PASS] * 3) == [DEG, DEG, NOM]


def test_calmer_cycles_step_down_to_the_most_severe_of_them():
    machine = machine_in(OVR)
    assert run(machine, [Verdict.DEGRADE, Verdict.PASS, Verdict.PASS]) == [OVR, OVR, DEG]


def test_alternating_verdicts_do_not_flap():
    machine = machine_in(DEG)
    assert set(run(machine, [Verdict.PASS, Verdict.DEGRADE] * 10)) == {DEG}


def test_holding_the_last_plan_is_bounded_in_time():
    machine = SafetyStateMachine(StateMachineConfig(max_hold_s=1.0))
    states = [machine.update(Verdict.OVERRIDE, 0.1 * i, True) for i in range(13)]
    assert states[:11] == [OVR] * 11  # up to 1.0 s of holding
    assert states[11:] == [MRM, MRM]  # 1.1 s: stop


def test_override_without_a_valid_plan_to_hold_stops():
    machine = SafetyStateMachine()
    assert machine.update(Verdict.OVERRIDE, 0.0, has_valid_plan=False) == MRM
    machine = machine_in(OVR)
    assert machine.update(Verdict.OVERRIDE, 0.1, has_valid_plan=False) == MRM


def test_minimal_risk_is_latched_until_enough_clean_cycles():
    machine = machine_in(MRM)
    assert run(machine, [Verdict.PASS] * 9) == [MRM] * 9
    assert machine.latched and machine.clean_cycles == 9
    assert run(machine, [Verdict.DEGRADE] + [Verdict.PASS] * 9) == [MRM] * 10  # count restarted
    assert machine.update(Verdict.PASS, 5.0, True) == NOM
    assert not machine.latched


def test_emergency_holds_until_the_latch_clears():
    machine = machine_in(NOM)
    machine.update(Verdict.EMERGENCY, 0.1, True)
    assert machine.emergency and machine.state == MRM
    run(machine, [Verdict.MINIMAL_RISK] + [Verdict.PASS] * 9)
    assert machine.emergency  # still latched
    machine.update(Verdict.PASS, 9.0, True)
    assert machine.state == NOM and not machine.emergency
