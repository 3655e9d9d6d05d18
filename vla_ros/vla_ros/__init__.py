"""ROS-side glue shared by the vla_ros nodes and the `vla` command-line tool."""
