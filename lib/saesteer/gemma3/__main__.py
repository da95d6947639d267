"""``python -m saesteer.gemma3``: the resumable build of Gemma 3 270M's SAEs (see ``build``)."""

import sys

from saesteer.gemma3.build import main

sys.exit(main())
