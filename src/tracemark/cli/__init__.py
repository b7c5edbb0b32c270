"""Command-line interface: one module per capability."""

from tracemark.cli._main import build_parser, main

__all__ = ["build_parser", "main"]
