"""What is recorded beside the run record: W&B (or nothing), progress bars, and the facts about
where a run executes (code version, packages, device)."""
