"""The ground floor: ROS glue shared by every node and tool.

QoS, parameters, diagnostics, stamps, topics, bags, reports; it imports nothing of this
repository but vla_msgs.
"""
