"""Snapshot backups: cloud disk snapshots taken between pg_backup_start and pg_backup_stop.

info      backup.info's snapshots_info, read and written exactly as barman-cloud does
request   the snapshot options of `backup` and `restore`, checked
mounts    which directory a disk is mounted on (findmnt, as barman-cloud), or an override
provider  the interface every provider implements: instance, disks, snapshots
clouds    which provider, from the options or a backup's snapshots_info
aws       EC2: the instance, its volumes, snapshots (boto3)
gcp       Compute Engine: the instance, its disks, snapshots (google-cloud-compute)
backup    the snapshot backup: start, snapshots, stop, backup_label, backup.info DONE
restore   checks the recovery instance's disks, writes backup_label and recovery settings
"""
