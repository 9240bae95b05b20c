"""The delivery providers against real SMTP and HTTP servers on loopback (tests.receivers)."""
