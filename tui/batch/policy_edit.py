"""`policy trigger|retention-rule|tag ...`: the seed's policy editing helpers.

Each prints JSON to feed the next helper or `policy create`, as `az dataprotection
backup-policy` does; core.protection.editing does the editing.
"""

from __future__ import annotations

import argparse
from typing import Any

from tui.batch.options import positive_int
from tui.batch.protection_options import Verb, add_verbs, print_json

DAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")


def _create_schedule(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--interval-type", required=True, choices=("Hourly", "Daily", "Weekly"))
    parser.add_argument("--interval-count", required=True, type=positive_int)
    parser.add_argument("--schedule-days", required=True, nargs="+", metavar="DATETIME")


def _set_trigger(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--policy", required=True, metavar="FILE")
    parser.add_argument("--schedule", required=True, nargs="+", metavar="INTERVAL")
    parser.add_argument("--time-zone", help="an IANA time zone for the schedule")


def _create_lifecycle(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--retention-duration-count", required=True, type=positive_int)
    parser.add_argument(
        "--retention-duration-type", required=True, choices=("Days", "Weeks", "Months", "Years")
    )
    parser.add_argument(
        "--source-datastore", "-source-datastore", required=True, metavar="VaultStore|ArchiveStore"
    )
    parser.add_argument("--target-datastore", metavar="ArchiveStore")
    parser.add_argument(
        "--copy-option",
        metavar="CopyOnExpiryOption|ImmediateCopyOption|CustomCopyOption",
    )
    parser.add_argument(
        "--copy-after-duration",
        metavar="DURATION",
        help="with CustomCopyOption: copy this long after the backup (ISO 8601, e.g. P3M)",
    )


def _set_retention(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lifecycles", required=True, nargs="+", metavar="FILE")
    parser.add_argument("--name", required=True)
    parser.add_argument("--policy", required=True, metavar="FILE")


def _absolute(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--absolute-criteria", required=True, metavar="FirstOfMonth")


def _generic(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--days-of-week", nargs="+", default=[], metavar="DAY")
    parser.add_argument("--weeks-of-month", nargs="+", default=[], metavar="WEEK")
    parser.add_argument("--months-of-year", nargs="+", default=[], metavar="MONTH")
    parser.add_argument("--days-of-month", nargs="+", default=[], metavar="1..31|Last")


def _set_tag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--criteria", required=True, nargs="+", metavar="FILE")
    parser.add_argument("--name", required=True)
    parser.add_argument("--policy", required=True, metavar="FILE")
    parser.add_argument("--priority", type=positive_int, help="taggingPriority for a new tag")


def add_helpers(sub: Any) -> None:
    """`trigger`, `retention-rule` and `tag` under the `policy` command's verbs."""
    groups: dict[str, tuple[str, dict[str, tuple[str, Verb]]]] = {
        "trigger": (
            "schedule helpers",
            {
                "create-schedule": ("print repeating intervals", _create_schedule),
                "set": ("set the backup rule's schedule in a policy file", _set_trigger),
            },
        ),
        "retention-rule": (
            "retention rule helpers",
            {
                "create-lifecycle": ("print a lifecycle", _create_lifecycle),
                "set": ("set a retention rule's lifecycles in a policy file", _set_retention),
            },
        ),
        "tag": (
            "tagging helpers",
            {
                "create-absolute-criteria": ("print absolute tagging criteria", _absolute),
                "create-generic-criteria": ("print day/week/month criteria", _generic),
                "set": ("set a tag's criteria in a policy file", _set_tag),
            },
        ),
    }
    for name, (summary, verbs) in groups.items():
        group = sub.add_parser(name, help=summary, description=summary, add_help=False)
        add_verbs(group, verbs, dest="helper")


def run_helper(args: argparse.Namespace) -> None:
    """Print what the helper prints."""
    from core.protection import editing
    from core.protection.service import read_json_file

    key = (args.verb, args.helper)
    if key == ("trigger", "create-schedule"):
        print_json(
            editing.create_schedule(args.interval_type, args.interval_count, args.schedule_days)
        )
    elif key == ("trigger", "set"):
        policy = read_json_file(args.policy, "policy file")
        print_json(editing.set_trigger(policy, args.schedule, args.time_zone))
    elif key == ("retention-rule", "create-lifecycle"):
        print_json(
            editing.create_lifecycle(
                args.retention_duration_count,
                args.retention_duration_type,
                args.source_datastore,
                args.target_datastore,
                args.copy_option,
                args.copy_after_duration,
            )
        )
    elif key == ("retention-rule", "set"):
        policy = read_json_file(args.policy, "policy file")
        lifecycles = [read_json_file(path, "lifecycle file") for path in args.lifecycles]
        print_json(editing.set_retention_rule(policy, args.name, lifecycles, args.lifecycles))
    elif key == ("tag", "create-absolute-criteria"):
        print_json(editing.create_absolute_criteria(args.absolute_criteria))
    elif key == ("tag", "create-generic-criteria"):
        print_json(
            editing.create_generic_criteria(
                args.days_of_week, args.weeks_of_month, args.months_of_year, args.days_of_month
            )
        )
    else:
        policy = read_json_file(args.policy, "policy file")
        criteria = [read_json_file(path, "criteria file") for path in args.criteria]
        print_json(editing.set_tag(policy, args.name, criteria, args.priority, args.criteria))
