"""Builds the Temporal client and runs the journeys worker."""
