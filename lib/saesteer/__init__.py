"""saesteer: the shared library of the SAE steering study (hook points, SAEs, interventions, analyses)."""

import warnings

# sae-lens imports tqdm.auto, which warns in notebooks without ipywidgets; the study uses plain bars.
warnings.filterwarnings("ignore", message="IProgress not found")
