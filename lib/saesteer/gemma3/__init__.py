"""The real model as a second subject: Gemma 3 270M, real English text, and the SAEs the study trains on it."""
