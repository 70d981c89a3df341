"""Local fakes of cloud APIs that tests cannot reach (OpenAI fine-tuning, Bedrock extras)."""
