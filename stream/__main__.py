"""`python -m stream ...`."""

from stream.cli import main

raise SystemExit(main())
