"""Azure Backup's protection model: vaults, policies, schedules, tagging and retention.

Self-contained: it uses the object-store API and core.errors, and nothing here runs a
backup. The agent and the faces build on these modules.
"""
