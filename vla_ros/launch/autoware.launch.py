"""The pipeline inside an Autoware system, on Autoware's topics and types.

`ros2 launch vla_ros autoware.launch.py [name:=value ...]`: the pipeline's nodes and arguments
with `autoware` true by default (config/bringup_autoware.yaml; docs/BRINGUP.md, "Autoware").
"""

from vla_tools.launch_actions import bringup_launch_description


def generate_launch_description():
    """Return the Autoware bring-up (config/bringup_autoware.yaml)."""
    return bringup_launch_description('autoware')
