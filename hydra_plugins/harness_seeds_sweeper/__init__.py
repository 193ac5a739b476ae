"""The project's ``seeds=auto`` sweeper for Hydra: ``hydra/sweeper=seeds_auto`` (docs/REPORTS.md)."""
