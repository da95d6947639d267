"""Core mechanics: hook points, models, SAEs, nnsight edits, SAE codes, generation, statistics, tiny test models."""
