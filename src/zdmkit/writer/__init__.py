"""Traffic writer for the demo application, and the checker that proves no acknowledged write was lost."""
