"""Split SQL text into statements and tell whether each one only reads and is whole.

Pure module (no pyspark, no Django): ``lake_sql`` checks a query with it before it starts
Spark, and ``spark_jobs/sql.py`` checks it again inside the job.

The lake is written by its exporters and jobs only, so ``lake_sql`` runs queries and
nothing else: a statement must start, after comments, with one of
:data:`READ_ONLY_KEYWORDS`, and a query (``SELECT``, ``WITH``, ``EXPLAIN``...) must hold
no word of :data:`WRITE_WORDS` outside string literals, comments and backquoted names,
which catches ``WITH ... INSERT``, ``FROM t INSERT ...`` and ``EXPLAIN`` of a write.
A column or alias spelled like one of those words must be backquoted. The functions of
:data:`JAVA_CALLS` are refused backquoted too, and ``IDENTIFIER(...)``, which could name
them with a string, is refused.

Outside ANSI mode Spark takes almost any keyword for a name, so a clause keyword left
without its clause becomes an alias: ``FROM t WHERE`` reads ``t`` under the alias
``WHERE``, ``SELECT a order FROM t`` names the column ``order``, and the query runs
without the clause. :func:`check_clauses` refuses a keyword of :data:`CLAUSE_KEYWORDS`
that stands where an alias would and is not followed by its clause; an alias spelled like
one is written with ``AS``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

#: Leading keywords of statements that only read.
READ_ONLY_KEYWORDS = ("SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXPLAIN", "VALUES", "TABLE")
#: Statements that cannot hold a query, so a word like CREATE in them is only a name
#: (``SHOW CREATE TABLE``).
_NO_QUERY_INSIDE = {"SHOW", "DESCRIBE", "DESC"}
#: Words that make a query write or change the session, wherever they appear in it;
#: ``reflect``/``java_method`` call arbitrary Java static methods.
WRITE_WORDS = frozenset(
    {
        *("INSERT", "OVERWRITE", "MERGE", "UPDATE", "DELETE", "DROP", "CREATE", "ALTER"),
        *("TRUNCATE", "CACHE", "UNCACHE", "REFRESH", "LOAD", "ADD", "MSCK", "REPAIR"),
        *("SET", "RESET", "USE", "GRANT", "REVOKE", "DECLARE", "EXECUTE", "CALL"),
        *("REFLECT", "JAVA_METHOD", "TRY_REFLECT"),
    }
)
#: Functions that call arbitrary Java static methods: refused however they are named,
#: bare, backquoted or qualified (``builtin.`java_method```).
JAVA_CALLS = frozenset({"REFLECT", "JAVA_METHOD", "TRY_REFLECT"})
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: Clause keywords that Spark (outside ANSI mode) silently reads as an alias when they
#: follow a table or an expression without their clause; those needing ``BY`` first.
CLAUSE_KEYWORDS = frozenset(
    {
        *("WHERE", "HAVING", "QUALIFY", "LIMIT", "OFFSET", "FROM", "JOIN", "ON", "USING"),
        *("WINDOW", "UNION", "EXCEPT", "INTERSECT", "MINUS"),
        *("GROUP", "ORDER", "SORT", "CLUSTER", "DISTRIBUTE"),
    }
)
_NEEDS_BY = frozenset({"GROUP", "ORDER", "SORT", "CLUSTER", "DISTRIBUTE"})
#: Characters that may begin an operand besides words and numbers.
_OPERAND_START = frozenset("'(-+~*:?")
#: Words after which a word is an operand (a name), not an alias: ``WHERE order = 1``.
_OPERAND_BEFORE = CLAUSE_KEYWORDS | {
    *("SELECT", "DISTINCT", "ALL", "BY", "AND", "OR", "NOT", "AS", "IN", "IS", "LIKE"),
    *("ILIKE", "RLIKE", "REGEXP", "BETWEEN", "CASE", "WHEN", "THEN", "ELSE", "OVER"),
    *("PARTITION", "TABLE", "WITH", "EXPLAIN", "VALUES", "EXISTS", "INTERVAL", "LATERAL"),
    *("DIV", "ESCAPE", "ANY", "SOME", "EXTENDED", "FORMATTED", "CODEGEN", "COST"),
}


FORMATS = ("table", "csv", "json")


class QueryRefused(ValueError):
    """The SQL text cannot run as given: empty, or several statements for one output."""


class NotReadOnly(QueryRefused):
    """A statement would write to the lake or change the session."""


class IncompleteClause(QueryRefused):
    """A clause keyword without its clause, which Spark would read as an alias."""


@dataclass(frozen=True)
class Statement:
    """One statement of a SQL text, and the comment line just before its first word."""

    sql: str
    title: str


def split_statements(text: str) -> list[str]:
    """Return the statements of ``text`` split on ``;``, ignoring ones inside quotes/comments.

    Statements holding nothing but comments and blanks are dropped.
    """
    return [statement.sql for statement in parse_statements(text)]


def parse_statements(text: str) -> list[Statement]:
    """Return the statements of ``text`` with their titles (see :class:`Statement`).

    The title is the last ``--`` comment line before the statement's first word, else
    its first line of code, shortened to 80 characters.
    """
    statements: list[Statement] = []
    current: list[str] = []
    comment, title = "", ""
    has_code = False

    def close() -> None:
        sql = "".join(current).strip()
        first = next((line.strip() for line in _code(sql).splitlines() if line.strip()), "")
        statements.append(Statement(sql, title or _shorten(first)))

    for kind, piece in _lex(text):
        if kind == ";":
            if has_code:
                close()
            current, comment, title, has_code = [], "", "", False
            continue
        current.append(piece)
        if kind == "--" and not has_code:
            comment = piece[2:].strip()
        elif kind not in ("--", "/*", " "):
            if not has_code:
                title = comment
            has_code = True
    if has_code:
        close()
    return statements


def check_read_only(statement: str) -> None:
    """Raise :class:`NotReadOnly` unless ``statement`` only reads (see the module doc)."""
    words = [piece.upper() for kind, piece in _lex(statement) if kind == "w"]
    if not words:
        raise NotReadOnly("empty statement")
    if words[0] not in READ_ONLY_KEYWORDS:
        raise NotReadOnly(
            f"{words[0]} is not allowed: lake_sql only reads "
            f"(statements start with {', '.join(READ_ONLY_KEYWORDS)})"
        )
    if words[0] in _NO_QUERY_INSIDE:
        return
    found = [word for word in words if word in WRITE_WORDS]
    if found:
        raise NotReadOnly(f"{found[0]} is not allowed: lake_sql only reads")
    names = [piece[1:-1].upper() for kind, piece in _lex(statement)
             if kind == "'" and piece.startswith("`") and piece.endswith("`")]  # fmt: skip
    called = [name for name in names if name in JAVA_CALLS]
    if called:
        raise NotReadOnly(f"{called[0]} is not allowed: lake_sql only reads")
    if "IDENTIFIER" in words:
        # IDENTIFIER('java_method')(...) names a function with a string.
        raise NotReadOnly(
            "IDENTIFIER(...) is not allowed: lake_sql takes no name built from a string;"
            " write the name itself (backquote a column named identifier)"
        )


def check_clauses(statement: str) -> None:
    """Raise :class:`IncompleteClause` if a clause keyword stands where Spark would take
    it for an alias (after a table or an expression) without its clause after it."""
    tokens = [_token(kind, piece) for kind, piece in _lex(statement)
              if kind not in ("--", "/*", " ")]  # fmt: skip
    if not tokens or tokens[0] in _NO_QUERY_INSIDE:
        return
    for i, word in enumerate(tokens):
        alias_place = word in CLAUSE_KEYWORDS and i > 0 and _ends_operand(tokens[i - 1])
        if alias_place and not _starts_clause(tokens, i):
            raise IncompleteClause(
                f"incomplete {word} clause: Spark would take {word} for an alias of what "
                f"precedes it and run the query without the clause; complete it, or "
                f"write AS `{word.lower()}` for an alias"
            )


def check_statements(statements: Sequence[Statement], fmt: str) -> None:
    """Raise :class:`QueryRefused` unless the statements may run in ``fmt``: at least one,
    each read-only and without a dangling clause keyword (:func:`check_clauses`), and only
    one for CSV and JSON (one result per output)."""
    if not statements:
        raise QueryRefused("no SQL statement given")
    if fmt in ("csv", "json") and len(statements) > 1:
        raise QueryRefused(
            f"--format {fmt} takes one statement, got {len(statements)}: "
            "use --format table, or one call per statement"
        )
    for number, statement in enumerate(statements, 1):
        try:
            check_read_only(statement.sql)
            check_clauses(statement.sql)
        except QueryRefused as error:
            where = f"statement {number}: " if len(statements) > 1 else ""
            raise type(error)(f"{where}{error}") from None


def _lex(text: str) -> Iterator[tuple[str, str]]:
    """Yield (kind, text) pieces of ``text``: ``w`` a word, ``'`` a quoted literal or
    backquoted name, ``--``/``/*`` a comment, ``;``, `` `` blanks, ``.`` anything else."""
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if char in "'\"`":
            raw = i > 0 and text[i - 1] in "rR" and (i < 2 or not _is_word_char(text[i - 2]))
            end = _closing_quote(text, i, raw)
            yield "'", text[i:end]
            i = end
        elif text.startswith("--", i):
            end = text.find("\n", i)
            end = n if end < 0 else end
            yield "--", text[i:end]
            i = end
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            end = n if end < 0 else end + 2
            yield "/*", text[i:end]
            i = end
        elif char == ";":
            yield ";", char
            i += 1
        elif _is_word_char(char) and not char.isdigit():
            match = _WORD.match(text, i)
            end = match.end() if match else i + 1
            yield "w", text[i:end]
            i = end
        else:
            yield (" " if char.isspace() else "."), char
            i += 1


def _token(kind: str, piece: str) -> str:
    """Return a lexed piece as :func:`check_clauses` compares it: words upper-cased,
    literals and backquoted names ``'``, digits ``0``, other characters themselves."""
    if kind == "w":
        return piece.upper()
    if kind == "'":
        return "'"
    return "0" if piece.isdigit() else piece


def _ends_operand(token: str) -> bool:
    """Tell whether ``token`` can end a table or an expression (so an alias may follow)."""
    if token in ("'", "0", ")"):
        return True
    return _is_word_char(token[0]) and token not in _OPERAND_BEFORE


def _starts_clause(tokens: Sequence[str], i: int, nested: bool = False) -> bool:
    """Tell whether the clause keyword ``tokens[i]`` is followed by its clause."""
    following = tokens[i + 1] if i + 1 < len(tokens) else None
    if tokens[i] in _NEEDS_BY:
        return following == "BY"
    if following is None or not (_is_word_char(following[0]) or following in _OPERAND_START):
        return False
    if nested or following not in CLAUSE_KEYWORDS:
        return True
    # WHERE followed by a clause of its own (ORDER BY, LIMIT 5) has no condition.
    return not _starts_clause(tokens, i + 1, nested=True)


def _is_word_char(char: str) -> bool:
    return char.isalnum() or char == "_"


def _closing_quote(text: str, start: int, raw: bool = False) -> int:
    """Return the index just past the quoted literal that opens at ``start``.

    In a raw literal (``r'...'``) a backslash escapes nothing.
    """
    quote, i = text[start], start + 1
    while i < len(text):
        if text[i] == "\\" and quote != "`" and not raw:
            i += 2
            continue
        if text[i] == quote:
            if text.startswith(quote * 2, i):  # '' inside '...' is an escaped quote
                i += 2
                continue
            return i + 1
        i += 1
    return len(text)


def _code(sql: str) -> str:
    return "".join(piece for kind, piece in _lex(sql) if kind not in ("--", "/*"))


def _shorten(line: str, width: int = 80) -> str:
    line = " ".join(line.split())
    return line if len(line) <= width else line[: width - 1] + "…"
