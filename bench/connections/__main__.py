"""``python -m bench.connections``."""

from bench.connections.main import main

main()
