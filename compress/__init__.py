"""Compression: knowledge distillation, structured pruning, quantization and recovery."""
