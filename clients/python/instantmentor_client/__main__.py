"""``python -m instantmentor_client`` — see :mod:`instantmentor_client.cli`."""

from instantmentor_client.cli import main

raise SystemExit(main())
