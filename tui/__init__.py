"""pgvault's faces: the Textual console (tui.app) and the headless --batch command line.

This package's __init__ and tui.cli import no Textual at module scope, so that the --batch
path never loads it.
"""
