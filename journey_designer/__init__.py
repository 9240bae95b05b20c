"""The Streamlit journey designer (a client of the HTTP API)."""
