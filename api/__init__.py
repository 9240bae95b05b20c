"""The HTTP API: Segment-compatible ingest, `POST /trigger` and the management endpoints."""
