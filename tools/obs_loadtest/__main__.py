"""``python -m obs_loadtest``: see cli.py."""
import sys

from .cli import main

sys.exit(main())
