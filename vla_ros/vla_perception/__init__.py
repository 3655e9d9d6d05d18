"""Sensor synchronisation and preprocessing: N cameras and odometry to one SensorFrame."""
