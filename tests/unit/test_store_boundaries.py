"""Guards of the code's structure: D2 — ledger rows have one writer; and SQL lives in ``src/aftersales/store/``.

Both read the source (tokens and syntax trees, not text: comments and docstrings may talk about SQL freely), and
each checker is first shown to catch a violation, so that a guard that stopped looking would fail here.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "aftersales"
LEDGER_TABLES = ("ledger_transactions", "ledger_entries")
#: Modules that may name the ledger's tables: their definition, the ledger's store (the writer and the reads) and
#: the record export's reads. Migrations define the schema.
LEDGER_MODULES = {"store/tables.py", "store/ledger.py", "store/records.py"}
#: The one function that inserts ledger rows, and the two paths that call it: the unit of work's flush and the
#: bulk import (which hands it many postings at once).
WRITER = ("store/ledger.py", "write")
WRITER_CALLERS = {"store/repositories.py"}  # the unit of work's batch writer, which the bulk import shares (B4)

#: Every module outside store/ (and its migrations): no SQL anywhere else (DESIGN.md: all queries live in store/).
def _outside_store() -> list[str]:
    return sorted(p.relative_to(SRC).as_posix() for p in SRC.rglob("*.py") if p.relative_to(SRC).parts[0] != "store")


NO_SQL = _outside_store()
SQL_CALL = re.compile(r"\.\s*(execute|executemany|exec_driver_sql|copy)\s*\(|\b(exec_driver_sql|executemany)\s*\(")
INSERTING = {"insert", "insert_rows", "copy_rows", "insert_with_ids", "executemany", "copy"}


def _code(source: str) -> str:
    """The source without its comments and string literals (docstrings included)."""
    out = []
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type in (tokenize.COMMENT, tokenize.STRING) or tok.type == getattr(tokenize, "FSTRING_MIDDLE", -1):
            continue
        out.append(tok.string)
    return " ".join(out)


def sql_calls(source: str) -> list[str]:
    """The names of the calls that run SQL in ``source``: ``.execute(``, ``.executemany(``, ``.copy(``,
    ``exec_driver_sql(``."""
    return [m.group(1) or m.group(2) for m in SQL_CALL.finditer(_code(source))]


def ledger_writes(name: str, source: str) -> list[str]:
    """Where ``source`` (the module ``name``, relative to src/aftersales) could write ledger rows outside the writer:
    naming a ledger table outside :data:`LEDGER_MODULES`, raw ``INSERT INTO``/``COPY`` of one, or, in those modules,
    an inserting call outside :data:`WRITER`."""
    problems = []
    sql_text = re.compile(r"(INSERT\s+INTO|COPY)\s+\"?(" + "|".join(LEDGER_TABLES) + r")\b", re.I)
    if sql_text.search(source):
        problems.append(f"{name}: SQL text inserts into a ledger table")
    tables = "|".join(LEDGER_TABLES)
    if name not in LEDGER_MODULES and (re.search(rf"\.\s*({tables})\b", _code(source))  # t.ledger_entries
                                       or re.search(rf"[\"']({tables})[\"'\s(]", source)):  # "ledger_entries"
        problems.append(f"{name}: names a ledger table")
    if name in LEDGER_MODULES:
        tree = ast.parse(source)
        allowed: set[int] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and (name, node.name) == WRITER:
                allowed |= {id(n) for n in ast.walk(node)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and id(node) not in allowed:
                func = node.func
                called = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
                if called in INSERTING:
                    problems.append(f"{name}:{node.lineno}: {called}() outside {WRITER[1]}()")
    return problems


def _modules() -> dict[str, str]:
    return {p.relative_to(SRC).as_posix(): p.read_text(encoding="utf-8") for p in SRC.rglob("*.py")
            if "migrations" not in p.parts}


def test_the_guards_catch_what_they_guard_against() -> None:
    assert sql_calls("conn.execute(select(1))\nx = cur.executemany(sql, rows)\nwith cur.copy('COPY t') as c: pass") == [
        "execute", "executemany", "copy"]
    assert sql_calls('"""conn.execute(x) in a docstring"""\n# conn.execute(x) in a comment\n') == []
    assert ledger_writes("service/x.py", "conn.execute(insert(t.ledger_entries), rows)")
    assert ledger_writes("service/x.py", 'cur.execute("INSERT INTO ledger_transactions VALUES (1)")')
    assert ledger_writes("service/x.py", 'self._rows("ledger_entries", COLS, rows)')
    assert not ledger_writes("api/x.py", "def ledger_transactions(ctx): ...")
    assert ledger_writes("store/ledger.py", "def other(conn):\n    insert_rows(conn, t.ledger_entries, COLS, rows)\n")
    assert not ledger_writes("store/ledger.py", "def write(conn, txs):\n    insert_rows(conn, t.ledger_entries, COLS, rows)\n")


def test_D2_ledger_rows_have_one_writer_store_ledger_write() -> None:
    modules = _modules()
    problems = [p for name, source in sorted(modules.items()) for p in ledger_writes(name, source)]
    assert problems == []
    callers = {name for name, source in modules.items() if re.search(r"\bledger_store\s*\.\s*write\s*\(", _code(source))}
    assert callers == WRITER_CALLERS
    # and no second writer by another name: nothing but the ledger's writer and the store's one batch writer (its
    # orders, groups, search terms and events) inserts through the store's bulk helpers
    bulk_users = {name for name, source in modules.items()
                  if re.search(r"\b(insert_rows|copy_rows)\s*\(", _code(source)) and name != "store/bulk.py"}
    assert bulk_users == {"store/ledger.py", "store/repositories.py"}


def test_no_sql_outside_the_store() -> None:
    assert {"service/complaints.py", "service/users.py", "service/webhooks.py", "api/middleware.py", "importer.py"} <= set(NO_SQL)
    modules = _modules()
    found = {name: sql_calls(modules[name]) for name in NO_SQL}
    assert {name: calls for name, calls in found.items() if calls} == {}
