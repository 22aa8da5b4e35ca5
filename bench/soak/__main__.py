"""``python -m bench.soak``."""

from bench.soak.main import main

main()
