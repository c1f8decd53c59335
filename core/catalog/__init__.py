"""A server's catalog in a destination: what is stored, how it is named, what it says.

layout       object keys (barman-cloud's layout), archive names, backup names
backup_info  backup.info, byte-compatible with barman
manifest     pgvault.json (files, archives, checksums) and PostgreSQL's backup_manifest
reader       Catalog: the one reader of a server's backups, listings cached per instance
listing      backup-list and backup-show as frozen data
browse       a destination's servers and a server's WAL archive, for the console
keep         keep annotations, as barman-cloud-backup-keep writes them
retention    retention policies evaluated as barman-cloud does
delete       backup-delete: one backup or what a policy frees, then its WAL
"""
