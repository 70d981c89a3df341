"""Serving: an OpenAI-compatible server over registered models, with RAG, batching and canaries."""
