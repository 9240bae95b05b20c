"""Benchmarks of journeys against bare Temporal, side by side in one run (`make bench`).

`python -m bench` starts a Temporal dev server, the API (with its event router), the journeys
worker and a bare-SDK worker as processes of their own, runs the four benchmarks and prints
and saves the results; see `bench/README.md`.
"""
