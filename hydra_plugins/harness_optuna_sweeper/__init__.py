"""The project's Optuna sweeper for Hydra: ``hydra/sweeper=harness_optuna`` (docs/OPTUNA.md)."""
