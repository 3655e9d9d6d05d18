"""Sensor sync, inference, safety monitor and trajectory output, on the vehicle's clock.

`ros2 launch vla_ros pipeline.launch.py [name:=value ...]`; arguments (`--show-args`): namespace,
rig_file, weights_path, weights_sha256, onnx_path, onnx_sha256, backend, log_level, use_sim_time,
autoware.
"""

from vla_tools.launch_actions import bringup_launch_description


def generate_launch_description():
    """Return the pipeline bring-up (config/bringup_pipeline.yaml) on the vehicle's clock."""
    return bringup_launch_description('pipeline')
