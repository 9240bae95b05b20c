"""Builds and runs the Temporal worker: the workflows, their activities and the schedules."""
