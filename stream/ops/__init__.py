"""Operations: the command line, the web views, logging, and the one-off commands (backfill,
replay, redrive, samples, schemas), plus the Ometria stand-in (`sandbox`) used by tests and
`make run`."""
