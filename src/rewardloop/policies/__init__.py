"""Inference: decide for a context, with the full action distribution, propensity and confidence."""
