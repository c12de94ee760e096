"""The consoles every command prints with: results to stdout, progress and messages to stderr.

Shared options are declared in `cli/options.py`; the error boundary is the root group in `cli/app.py`.
"""

from __future__ import annotations

from rich.console import Console

out_console = Console()
err_console = Console(stderr=True)
