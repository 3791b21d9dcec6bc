"""Stages: registry, context, and the built-in stages."""
