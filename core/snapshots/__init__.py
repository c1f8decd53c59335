"""Snapshot backups: cloud disk snapshots taken between pg_backup_start and pg_backup_stop.

info      backup.info's snapshots_info, read and written exactly as barman-cloud does
request   the snapshot options of `backup` and `restore`, checked
mounts    which directory a disk is mounted on (findmnt, as barman-cloud), or an override
aws       EC2: the instance, its volumes, snapshots (boto3)
backup    the snapshot backup: start, snapshots, stop, backup_label, backup.info DONE
restore   checks the recovery instance's disks, writes backup_label and recovery settings
"""
