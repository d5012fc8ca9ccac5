"""Masked diffusion LM adapters and loaders."""
