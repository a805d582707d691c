"""``python -m rnnshapes.cli``: the same as the ``rnnshapes`` command."""

from . import main

raise SystemExit(main())
