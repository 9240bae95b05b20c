"""Alembic revisions of the app store, oldest first (`0001_…`, `0002_…`)."""
