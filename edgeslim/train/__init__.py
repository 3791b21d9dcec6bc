"""The shared training engine (finetune, distill, recovery) and its settings."""
