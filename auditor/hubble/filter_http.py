"""The HTTP and DNS-query fields of FlowFilter, as Hubble reads them (pkg/hubble/filters/http.go, fqdn.go).

Status codes are full (`404`) or prefixes (`4+`, `40+`) of the zero-padded code, and match only
responses (code set); methods compare case-insensitively; URL and path values are regular
expressions searched in the URL or in the path of the request URI; headers match key and value
exactly.  Every HTTP field needs the filter's event-type list to be empty or to include L7 (129).
DNS query values are regular expressions searched in `l7.dns.query`.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable, Sequence
from typing import Any

from auditor.errors import ConfigError

Predicate = Callable[[Any], bool]
ACCESS_LOG_TYPE = 129
"""monitor message type of L7 (access log) events."""


def _regexes(values: Sequence[str], what: str) -> list[re.Pattern[str]]:
    try:
        return [re.compile(value) for value in values]
    except re.error as exc:
        raise ConfigError(f"invalid {what} filter: {exc}") from exc


def dns_query(values: Sequence[str], _ff: Any) -> Predicate:
    regexes = _regexes(values, "DNS query")

    def match(flow: Any) -> bool:
        if flow.l7.WhichOneof("record") != "dns":
            return False
        return any(regex.search(flow.l7.dns.query) for regex in regexes)

    return match


Builder = Callable[[Sequence[Any], Any], Predicate]


def _checked(name: str, build: Callable[[Sequence[Any]], Predicate]) -> Builder:
    """HTTP fields need an event-type filter that is empty or includes L7 (129), as in Hubble."""
    def checked(values: Sequence[Any], ff: Any) -> Predicate:
        types = list(ff.event_type)
        if types and not any(t.type == ACCESS_LOG_TYPE for t in types):
            raise ConfigError(f"filtering by {name} requires the event type filter to only match 'l7' events")
        inner = build(values)
        return lambda flow: flow.l7.WhichOneof("record") == "http" and inner(flow.l7.http)

    return checked


_STATUS_FULL = re.compile(r"^[1-5][0-9]{2}$")
_STATUS_PREFIX = re.compile(r"^[1-5][0-9]?\+$")


def _status(values: Sequence[str]) -> Predicate:
    full, prefixes = set(), []
    for value in values:
        if _STATUS_FULL.match(value):
            full.add(value)
        elif _STATUS_PREFIX.match(value):
            prefixes.append(value[:-1])
        else:
            raise ConfigError(f"invalid http status code filter: invalid status code prefix: {value!r}")

    def match(http: Any) -> bool:
        if not http.code:
            return False
        code = f"{http.code:03d}"
        return code in full or any(code.startswith(prefix) for prefix in prefixes)

    return match


def _method(values: Sequence[str]) -> Predicate:
    wanted = {value.casefold() for value in values}
    return lambda http: bool(http.method) and http.method.casefold() in wanted


def _url(values: Sequence[str]) -> Predicate:
    regexes = _regexes(values, "http url")
    return lambda http: bool(http.url) and any(regex.search(http.url) for regex in regexes)


def _request_path(url: str) -> str | None:
    """The path of a request URI (absolute URL or absolute path), None when it is not one."""
    if not (url.startswith("/") or "://" in url):
        return None
    try:
        return urllib.parse.urlsplit(url).path
    except ValueError:
        return None


def _path(values: Sequence[str]) -> Predicate:
    regexes = _regexes(values, "http path")

    def match(http: Any) -> bool:
        path = _request_path(http.url) if http.url else None
        return path is not None and any(regex.search(path) for regex in regexes)

    return match


def _header(values: Sequence[Any]) -> Predicate:
    wanted = {(header.key, header.value) for header in values}
    return lambda http: any((header.key, header.value) in wanted for header in http.headers)


http_status = _checked("http status code", _status)
http_method = _checked("http method", _method)
http_path = _checked("http path", _path)
http_url = _checked("http url", _url)
http_header = _checked("http headers", _header)
