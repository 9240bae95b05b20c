"""The `journeys` command line: composes the system (up, demo, publish, one component at a time).

The top layer: the only package that imports every other one, and nothing imports it.
"""
