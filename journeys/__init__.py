"""journeys: Canvas-style customer-journey orchestration on Temporal.

The domain package: the journey model and its validation, conditions, durations, templates,
settings and the store. It does no Temporal or HTTP I/O of its own and imports no other package
of the project (`make lint` checks).
"""
