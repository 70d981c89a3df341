"""The one OpenAI-compatible client: synthesis, paraphrase and the judge use it."""
