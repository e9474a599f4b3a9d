"""The hardware side of pytest-recenv: markers, the hardware report, why a test is skipped."""
