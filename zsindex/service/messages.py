"""Library messages as a client of the server reads them: the Python API's names become the server's own."""

from __future__ import annotations

import re

from ..errors import rewrite_api_calls

# Library messages name the Python API's parameters; these are the server's settings, not a request's.
SERVER_SETTINGS = {"max_megapixels=MP": "set by the server: zsindex serve --max-upload-megapixels"}


# Library parameters that are the server's start-up settings: named with a value (model=demo, folder=DIR),
# they are written as the options of `zsindex serve` that set them.
SERVE_OPTIONS = {"model": "--model", "pretrained": "--pretrained", "folder": "--index"}
_VALUE = r"(?:'[^']*'|\"[^\"]*\"|[^\s,;)'\"]+?)"
_SETTING = rf"(?<![\w/.?&=-])(?:{'|'.join(SERVE_OPTIONS)})={_VALUE}(?=\.?(?:[\s,;)]|$))"
_SETTINGS = re.compile(rf"{_SETTING}(?:\s+{_SETTING})*")


def _serve_command(match: re.Match[str]) -> str:
    words = []
    for setting in re.finditer(_SETTING, match.group(0)):
        name, value = setting.group(0).split("=", 1)
        if value.startswith("'") and "\\" in value:  # a path in the escaped form (errors.given): one shell word
            from ..errors import shell_word
            from ..output import unescape_text

            value = shell_word(unescape_text(value[1:-1]))
        words += [SERVE_OPTIONS[name], value]
    return "`zsindex serve " + " ".join(words) + "`"


# Library methods that library messages name -> the route that does the same here ({} is the set's name).
API_ROUTES = {"labels_add": "PUT /api/labels/{}", "labels_edit": "PUT /api/labels/{}",
              "labels_remove": "DELETE /api/labels/{}", "labels_show": "GET /api/labels/{}",
              "tag": "POST /api/labels/{}/tag", "untag": "DELETE /api/labels/{}/tags", "ingest": "POST /api/ingest",
              "status": "GET /api/status"}


def _route_text(method: str, args: list[tuple[str, bool]]) -> str | None:
    """``Library.labels_edit('my set')`` -> ``PUT /api/labels/my%20set``; a method with no route here (rebuild,
    forget) is the command that does it on the server's machine."""
    from urllib.parse import quote

    from ..clikit import API_COMMANDS

    route = API_ROUTES.get(method)
    if route is None:
        return f"`zsindex {API_COMMANDS[method]}` (on the server's machine)" if method in API_COMMANDS else None
    name = next((value for value, quoted in args if quoted), "NAME")
    return route.format(quote(name, safe=""))


# A Python parameter as a library message names it: ``after=``, ``format=``, ``labels=,`` (not ``k=24``, not a URL's
# ``?q=``); ``name=True`` is a flag set.
_API_PARAM = re.compile(r"(?<![\w/.?&=-])([a-z][a-z0-9_]*)=(True\b|(?=[\s,;:)'\"`]|$))")


def _field(match: re.Match[str]) -> str:
    if match.group(2):
        return f"{match.group(1)}: true"
    value_follows = match.string[match.end():match.end() + 1] in ("'", '"', "`")
    return match.group(1) + (" " if value_follows else "")  # format='apng' -> format 'apng'


def server_text(message: str) -> str:
    """A library message with the methods it names written as routes, its parameters as server settings (the
    model, the index: as the options of `zsindex serve`), and every other ``name=`` as the request's field or
    query parameter ``name``."""
    message = rewrite_api_calls(message, _route_text)
    for api_name, setting in SERVER_SETTINGS.items():
        message = message.replace(api_name, setting)
    message = _SETTINGS.sub(_serve_command, message)
    return _API_PARAM.sub(_field, message)
