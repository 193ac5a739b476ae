"""``seeds=auto``: a grid study run in rounds of seeds, each added only where a comparison is
still unclear (docs/REPORTS.md, "Seeds until the answer is clear"). The grid (``grid``), the
decision after a round (``decide``) and the rounds on the launcher (``sweep``); the Hydra plugin
shell is in ``hydra_plugins/harness_seeds_sweeper``."""
