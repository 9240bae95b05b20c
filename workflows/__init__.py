"""Deterministic workflow code: the journey interpreter."""
