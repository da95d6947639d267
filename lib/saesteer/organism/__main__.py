"""``python -m saesteer.organism [--fresh]``: build the model organism into ``data/organism/``, then the second
organism that judges coherence (``organism.second``; ``--fresh`` rebuilds both)."""

import sys

from saesteer.organism import build, second

code = build.main()
sys.exit(code or second.main(sys.argv[1:]))
