"""The query parameters of a list or single GET (reference §4.2): `$filter` (OData v3 subset: eq ne gt
ge lt le, and/or, parentheses, substringof/startswith/endswith), `$select` (with `Linked/Field`),
`$custom` (`View.Field`), and the refusal of parameters the contract does not have (`$orderby`)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

from ..core import SimRequest
from .common import as_datetime, http_error

# The six documented parameters (§4.2; OAS24 lists the same for a list GET).
QUERY_PARAMETERS = ("$filter", "$top", "$skip", "$expand", "$select", "$custom")


def check_parameters(req: SimRequest, allowed: tuple[str, ...] = QUERY_PARAMETERS) -> None:
    """A `$`-parameter outside the contract (`$orderby`, `$count`…) is refused.

    UNVERIFIED status and text: §4.2 documents no `$orderby`/`$count` for contract-based REST; the
    sandbox refuses rather than silently ignoring, so a client relying on an order is caught."""
    for name in req.query:
        if name.startswith("$") and name not in allowed:
            raise http_error(
                f"The query parameter '{name}' is not supported by the contract-based REST API.",
                "PX.Api.ContractBased.OptimizedExport.NotSupportedException",
                status=400,
            )


def select_paths(req: SimRequest | None) -> list[list[str]]:
    """`$select=A,B/C` as [["A"], ["B", "C"]]; empty when nothing was selected."""
    text = (req.arg("$select") if req else None) or ""
    return [s.strip().split("/") for s in text.split(",") if s.strip()]


def expand_paths(req: SimRequest | None) -> set[str]:
    text = (req.arg("$expand") if req else None) or ""
    return {s.strip() for s in text.split(",") if s.strip()}


def custom_fields(req: SimRequest | None) -> list[tuple[str | None, str, str]]:
    """`$custom=Document.UsrX,Details/Transactions.UsrY` as [(None, "Document", "UsrX"), ("Details", …)]."""
    text = (req.arg("$custom") if req else None) or ""
    out = []
    for item in (s.strip() for s in text.split(",") if s.strip()):
        owner, _, dotted = item.rpartition("/")
        view, dot, name = dotted.partition(".")
        if not dot or not view or not name:
            raise http_error(f"The $custom value '{item}' is not in the <View>.<Field> format.", status=400)
        out.append((owner or None, view, name))
    return out


# ---- $filter ---------------------------------------------------------------------------------------

_TOKEN_RE = re.compile(
    r"\s*(?:(?P<lit>(?:datetimeoffset|datetime|date|guid)?'(?:[^']|'')*')|(?P<num>-?\d+(?:\.\d+)?)"
    r"|(?P<paren>[()])|(?P<comma>,)|(?P<word>[A-Za-z_][\w/.]*))"
)
_FUNCTIONS = {
    "substringof": lambda needle, hay: isinstance(hay, str) and needle.lower() in hay.lower(),
    "startswith": lambda hay, prefix: isinstance(hay, str) and hay.lower().startswith(prefix.lower()),
    "endswith": lambda hay, suffix: isinstance(hay, str) and hay.lower().endswith(suffix.lower()),
}


def parse_filter(text: str) -> Callable[[dict], bool]:
    tokens = []
    pos = 0
    while pos < len(text.rstrip()):
        m = _TOKEN_RE.match(text, pos)
        if not m or m.end() == pos:
            raise _invalid(f"Invalid $filter near '{text[pos : pos + 20]}'.")
        tokens.append(m)
        pos = m.end()
    expr, rest = _parse_or(tokens)
    if rest:
        raise _invalid("Invalid $filter: unexpected trailing tokens.")
    return expr


def _invalid(message: str):
    return http_error(message, "PX.Api.ODataParserException")


def _parse_or(tokens):
    left, tokens = _parse_and(tokens)
    while tokens and tokens[0].group("word") == "or":
        right, tokens = _parse_and(tokens[1:])
        left = (lambda a, b: lambda r: a(r) or b(r))(left, right)
    return left, tokens


def _parse_and(tokens):
    left, tokens = _parse_atom(tokens)
    while tokens and tokens[0].group("word") == "and":
        right, tokens = _parse_atom(tokens[1:])
        left = (lambda a, b: lambda r: a(r) and b(r))(left, right)
    return left, tokens


_OPS = {
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "gt": lambda a, b: a is not None and a > b,
    "ge": lambda a, b: a is not None and a >= b,
    "lt": lambda a, b: a is not None and a < b,
    "le": lambda a, b: a is not None and a <= b,
}


def _field(path: list[str]) -> Callable[[dict], Any]:
    def get(rec: dict) -> Any:
        cur: Any = rec
        for part in path:
            cur = cur.get(part) if isinstance(cur, dict) else None
        return cur

    return get


def _parse_atom(tokens):
    if tokens and tokens[0].group("paren") == "(":
        expr, tokens = _parse_or(tokens[1:])
        if not tokens or tokens[0].group("paren") != ")":
            raise _invalid("Invalid $filter: missing ')'.")
        return expr, tokens[1:]
    if tokens and tokens[0].group("word") in _FUNCTIONS:
        return _parse_function(tokens)
    if len(tokens) < 3 or not tokens[0].group("word") or tokens[1].group("word") not in _OPS:
        raise _invalid("Invalid $filter: expected '<Field> <op> <literal>'.")
    get, op, value = (
        _field(tokens[0].group("word").split("/")),
        _OPS[tokens[1].group("word")],
        _literal(tokens[2]),
    )

    def test(rec: dict) -> bool:
        try:
            return op(get(rec), value)
        except TypeError:
            return False

    return test, tokens[3:]


def _parse_function(tokens):
    """substringof('x', Field), startswith(Field, 'x'), endswith(Field, 'x') — optionally `eq true`."""
    name = tokens[0].group("word")
    if len(tokens) < 6 or tokens[1].group("paren") != "(" or tokens[3].group("comma") is None:
        raise _invalid(f"Invalid $filter: malformed {name}(…).")
    if tokens[5].group("paren") != ")":
        raise _invalid(f"Invalid $filter: malformed {name}(…).")
    first, second = tokens[2], tokens[4]
    if name == "substringof":
        needle, get = _literal(first), _field(second.group("word").split("/"))
        test = lambda rec: _FUNCTIONS[name](needle, get(rec))  # noqa: E731
    else:
        get, needle = _field(first.group("word").split("/")), _literal(second)
        test = lambda rec: _FUNCTIONS[name](get(rec), needle)  # noqa: E731
    rest = tokens[6:]
    if (
        len(rest) >= 2
        and rest[0].group("word") in ("eq", "ne")
        and rest[1].group("word") in ("true", "false")
    ):
        want = (rest[1].group("word") == "true") == (rest[0].group("word") == "eq")
        return (lambda rec: test(rec) == want), rest[2:]
    return test, rest


def _literal(tok) -> Any:
    if tok.group("num"):
        return float(tok.group("num"))
    word = tok.group("word")
    if word in ("true", "false"):
        return word == "true"
    if word == "null":
        return None
    lit = tok.group("lit")
    if not lit:
        raise _invalid("Invalid $filter literal.")
    prefix, _, quoted = lit.partition("'")
    text = quoted[:-1].replace("''", "'")
    if prefix in ("datetimeoffset", "datetime"):
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    if prefix == "date":
        return as_datetime(date.fromisoformat(text))
    return text
