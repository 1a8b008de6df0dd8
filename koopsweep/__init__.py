"""koopsweep: Koopman operator views on pruning deep networks (Redman et al., ICLR 2022)."""

__version__ = "0.2.0"
