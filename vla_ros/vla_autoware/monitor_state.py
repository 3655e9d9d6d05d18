"""The safety monitor's state as Autoware's system layer reads it: hazard status and lights.

autoware_msgs 1.12.0 carries no MRM state message (that is autoware_adapi_v1_msgs/MrmState, not
among the packages); what it has is autoware_system_msgs/HazardStatusStamped, the fault level
and emergency flag Autoware's emergency handler acts on, with the diagnostics behind them, and
autoware_vehicle_msgs/HazardLightsCommand. So the monitor's state maps to a fault level, its
minimal-risk manoeuvre to `emergency` (latched: `emergency_holding`), each rule's verdict to the
diagnostic list of its level, and the hazard lights follow SafetyStatus.hazard_lights (on in
MINIMAL_RISK, UN R157 5.5), with NO_COMMAND otherwise so other sources keep the lights.
"""

from diagnostic_msgs.msg import DiagnosticStatus, KeyValue
from vla_msgs.msg import SafetyCheck, SafetyStatus

NO_FAULT, SAFE_FAULT, LATENT_FAULT, SINGLE_POINT_FAULT = 0, 1, 2, 3  # HazardStatus levels
LEVEL_OF_STATE = {
    SafetyStatus.STATE_NOMINAL: NO_FAULT,
    SafetyStatus.STATE_DEGRADED: SAFE_FAULT,  # driving on, speed clamped
    SafetyStatus.STATE_OVERRIDE: LATENT_FAULT,  # the plan is refused; a held plan drives
    SafetyStatus.STATE_MINIMAL_RISK: SINGLE_POINT_FAULT,  # stopping
}
LEVEL_OF_VERDICT = {
    SafetyCheck.VERDICT_PASS: NO_FAULT,
    SafetyCheck.VERDICT_DEGRADE: SAFE_FAULT,
    SafetyCheck.VERDICT_OVERRIDE: LATENT_FAULT,
    SafetyCheck.VERDICT_MINIMAL_RISK: SINGLE_POINT_FAULT,
    SafetyCheck.VERDICT_EMERGENCY: SINGLE_POINT_FAULT,
}
DIAGNOSTIC_LEVEL = {
    NO_FAULT: DiagnosticStatus.OK,
    SAFE_FAULT: DiagnosticStatus.WARN,
    LATENT_FAULT: DiagnosticStatus.WARN,
    SINGLE_POINT_FAULT: DiagnosticStatus.ERROR,
}
LISTS = ('diag_no_fault', 'diag_safe_fault', 'diag_latent_fault', 'diag_single_point_fault')
NO_COMMAND, ENABLE = 0, 2  # HazardLightsCommand.command


def hazard_status(status: SafetyStatus, stamped_type: type) -> object:
    """Return the HazardStatusStamped of one monitor cycle (an unknown state: the worst level)."""
    message = stamped_type(stamp=status.header.stamp)
    hazard = message.status
    hazard.level = LEVEL_OF_STATE.get(status.state, SINGLE_POINT_FAULT)
    hazard.emergency = hazard.level == SINGLE_POINT_FAULT
    hazard.emergency_holding = hazard.emergency and status.latched
    for check in status.checks:
        level = LEVEL_OF_VERDICT.get(check.verdict, SINGLE_POINT_FAULT)
        getattr(hazard, LISTS[level]).append(
            DiagnosticStatus(
                level=DIAGNOSTIC_LEVEL[level],
                name=f'safety_monitor_node: {check.rule}',
                message=check.reason,
                hardware_id='vla_ros',
                values=[
                    KeyValue(key='value', value=repr(check.value)),
                    KeyValue(key='limit', value=repr(check.limit)),
                ],
            )
        )
    return message


def hazard_lights_command(status: SafetyStatus, command_type: type) -> object:
    """Return the HazardLightsCommand of one monitor cycle: ENABLE while they should be on."""
    return command_type(
        stamp=status.header.stamp, command=ENABLE if status.hazard_lights else NO_COMMAND
    )
