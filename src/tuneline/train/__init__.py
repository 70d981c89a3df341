"""Stage 5, train: LoRA / QLoRA / full fine-tuning here, or a managed job (OpenAI, Bedrock)."""
