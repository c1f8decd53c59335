"""Second copies: backups and the WAL they need, from one destination to another.

plan chooses the objects and their order, transfer copies and verifies one object,
core.catalog.copies notes on the source where each backup has copies; job runs it all as a job.
"""
