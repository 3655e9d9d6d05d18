"""The pipeline driving the simulator bridge: `ros2 launch vla_ros sim.launch.py`.

sim_bridge_node's own parameters (scenario, seed, mode...) are in config/sim_bridge.yaml; the
other arguments are pipeline.launch.py's.
"""

from vla_tools.launch_actions import bringup_launch_description


def generate_launch_description():
    """Return the sim bring-up (config/bringup_sim.yaml)."""
    return bringup_launch_description('sim')
