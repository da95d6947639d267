"""``python -m saesteer.organism [--fresh]``: build the model organism into ``data/organism/``, then its JumpReLU
SAEs (``organism.jumprelu``, chapter B; skipped when their quality table exists) and the second organism that
judges coherence (``organism.second``); ``--fresh`` rebuilds everything."""

import sys

from saesteer.organism import build, jumprelu, second

code = build.main()
if not code and not (jumprelu.out_dir() / "quality.json").is_file():
    jumprelu.build(jumprelu.JumpReLUConfig())
sys.exit(code or second.main(sys.argv[1:]))
