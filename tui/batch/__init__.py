"""The headless face: `pgvault --batch COMMAND`. Never imports Textual."""
