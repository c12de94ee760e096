"""rvos: referring video object segmentation with MTTR, from the command line and from Python."""

from rvos_cli.errors import RvosError

__version__ = "0.1.0"
__all__ = ["RvosError", "__version__"]
