"""Stage 9, serve: an OpenAI-compatible server over registered models (RAG, batching)."""
