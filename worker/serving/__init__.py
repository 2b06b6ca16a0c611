"""OpenAI-compatible serving of a base model and its LoRA adapters (worker side: imports torch)."""
