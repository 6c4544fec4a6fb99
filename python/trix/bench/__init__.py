"""Benchmarks: `python -m trix bench` (kernels), `--memory` (the signature memory), `--train` (modules)."""
