"""Command-line layer: argument parsing for every command (`main(argv)` functions), over the loops.

`contrib/PanopticDeepLab/*.py`, `contrib/PanopticFCN/*.py`, `tools/*.py`, `deploy/python/infer.py` and the
console scripts of setup.py are shells around these."""
