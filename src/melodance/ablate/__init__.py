"""The seed's ablations (SEED-NOTES sections 1 and 2) as tracked experiments, with a report."""
