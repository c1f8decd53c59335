"""Whether two destinations are one place: a copy's target is never its source.

URL strings differ for one place (`/d/../d`, a symlink, another query parameter, an endpoint
given by --endpoint-url or in the URL), so places are compared as what they resolve to: a
local directory by its real path, a cloud one by provider, endpoint, account, bucket and
prefix; credentials and the region never change where the objects are.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from core.storage import StoreConfig
from core.urls import Location, Provider

Place = tuple[str, ...]


def place(location: Location, config: StoreConfig) -> Place:
    """What `location` resolves to, equal for two spellings of one place."""
    if location.provider is Provider.FILE:
        return ("file", _real_path(os.path.join(location.bucket, location.prefix)))
    endpoint = config.endpoint_url or location.endpoint or ""
    if location.provider is Provider.AZURE and not endpoint and location.account:
        endpoint = f"https://{location.account}.blob.core.windows.net"
    prefix = "/".join(part for part in location.prefix.split("/") if part)
    account = (location.account or "").lower()
    return (str(location.provider), _endpoint(endpoint), account, location.bucket, prefix)


def _real_path(path: str) -> str:
    """The real path of the nearest existing ancestor and the rest (the target may not exist
    yet)."""
    head, rest = os.path.abspath(path), list[str]()
    while not os.path.exists(head) and head != os.path.dirname(head):
        head, tail = os.path.split(head)
        rest.insert(0, tail)
    return os.path.normpath(os.path.join(os.path.realpath(head), *rest))


def _endpoint(endpoint: str) -> str:
    if not endpoint:
        return ""
    parts = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
    netloc = parts.netloc.lower()
    default_port = {"https": ":443", "http": ":80"}.get(parts.scheme.lower(), "")
    if default_port and netloc.endswith(default_port):
        netloc = netloc[: -len(default_port)]
    path = "/".join(part for part in parts.path.split("/") if part)
    return f"{parts.scheme.lower()}://{netloc}/{path}"
