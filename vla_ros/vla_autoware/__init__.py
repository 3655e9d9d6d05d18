"""Adapters between the pipeline's messages and Autoware's (autoware_msgs 1.12.0), opt-in.

Each module is one small conversion with no rclpy (docs/BRINGUP.md, "Autoware"); the nodes that
use them (safety_monitor_node, trajectory_output_node) only wire them up when `autoware` is true.
"""
