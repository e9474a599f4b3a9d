"""The environment side of pytest-recenv: environment.yml checks, locks, builds and the CLI."""
