"""saesteer: the shared library of the SAE steering study (hook points, SAEs, interventions, analyses)."""

import os
import warnings

# Offline by default, before transformers or huggingface_hub is imported anywhere (they read it at import);
# a user with the hub sets HF_HUB_OFFLINE=0 explicitly.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

# sae-lens imports tqdm.auto, which warns in notebooks without ipywidgets; the study uses plain bars.
warnings.filterwarnings("ignore", message="IProgress not found")
