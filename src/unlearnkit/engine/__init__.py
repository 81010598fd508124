"""Training loop, device layer, run directories, seeding, progress."""
