"""``python -m bench.openloop``."""

from bench.openloop.main import main

main()
