"""Inference runtime and backends, the safety monitor, and trajectory output."""
