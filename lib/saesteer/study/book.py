"""The book's chapters as data: which chapters are papers, and which results files each chapter reads.

The pipeline (staleness) and the front page read these; no study module imports a chapter module.
"""

from __future__ import annotations

PAPERS = {  # chapter -> (letter, bibliography key)
    "refusal_steering": ("A", "obrien2024refusal"),
    "steering_vector_decomposition": ("B", "mayne2024decompose"),
    "feature_flow": ("C", "laptev2025flow"),
    "input_output_scores": ("D", "arad2025select"),
}

READS = {  # chapter -> the chapters whose results files it reads (listed before it in chapters.yaml)
    "feature_flow": ["refusal_steering"],
    "synthesis": list(PAPERS),
    "intro": list(PAPERS),
}
