"""The pipeline on a bag's /clock: `ros2 launch vla_ros replay.launch.py`, then `ros2 bag play`.

The same nodes and arguments as pipeline.launch.py, with use_sim_time true by default.
"""

from vla_tools.launch_actions import bringup_launch_description


def generate_launch_description():
    """Return the pipeline bring-up with the nodes on /clock."""
    return bringup_launch_description('pipeline', use_sim_time=True)
