"""Simulator bridge, camera renderer, scenario library and closed-loop evaluation."""
