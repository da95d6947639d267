"""Set-up shared by every chapter notebook: seeds, plot style, quiet libraries.

nbval compares cell outputs, stderr included, so the notebooks silence the
libraries' deprecation chatter here, in one place, and turn progress bars off
when ``TQDM_DISABLE=1`` (set by the test suite).
"""

from __future__ import annotations

import logging
import os
import warnings

import matplotlib
import pandas as pd
import seaborn as sns
import torch

NOISY = ("nnsight", "sae_lens", "transformers", "huggingface_hub", "papermill")


def setup(seed: int = 0) -> None:
    """Seed torch, set a readable plot style, and keep library warnings out of cell outputs."""
    torch.manual_seed(seed)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    matplotlib.rcParams.update({"figure.dpi": 100, "savefig.dpi": 120, "axes.titleweight": "bold"})
    sns.set_theme(style="whitegrid", context="notebook")
    pd.set_option("display.precision", 4)
    for category in (DeprecationWarning, FutureWarning, UserWarning):
        for module in NOISY:
            warnings.filterwarnings("ignore", category=category, module=module)
    for name in NOISY:
        logging.getLogger(name).setLevel(logging.ERROR)
