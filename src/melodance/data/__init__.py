"""Dataset layout reader, synthetic corpus and import of real data."""
