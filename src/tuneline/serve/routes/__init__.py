"""HTTP routes of the OpenAI-compatible server."""
