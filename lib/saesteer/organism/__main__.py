"""``python -m saesteer.organism [--fresh]``: build the model organism into ``data/organism/``."""

import sys

from saesteer.organism.build import main

sys.exit(main())
