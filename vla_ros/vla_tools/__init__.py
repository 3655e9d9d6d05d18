"""The tools on top: the `vla` command and everything that drives the stack from outside.

Bring-up and `vla run`, replay, every benchmark, the fault campaign, the soak and the demo;
they may import every package below them (docs/ARCHITECTURE.md, "Layers").
"""
