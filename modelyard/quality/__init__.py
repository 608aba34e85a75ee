"""Data quality: profiles, the drift engine, validation checks and monitoring verdicts."""
