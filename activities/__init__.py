"""Temporal activities: every side effect the journey interpreter needs."""
