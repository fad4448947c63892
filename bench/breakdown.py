"""Where an app path spends its time: wall-clock timers around named functions, plus SQL time.

Used by the benchmarks' --breakdown flag. Each target is (level, "module:function"[, label]); the
module attribute is replaced by a timing wrapper while installed, so callers that look it up
as a global (or as module.function) are timed. Times are inclusive.

SQL: on PostgreSQL, psycopg's Cursor.execute, Cursor.copy and Connection.commit are wrapped,
so every statement is timed (COPY included, from entering the block to the end of the
transfer, i.e. with the Python that feeds it), grouped by statement text. On SQLite the
total comes from SQLAlchemy's cursor-execute events. Only work inside `counting()` (or
everything, when installed active) is counted, so setup and the raw baselines never are.
The wrappers cost about a microsecond per call.
"""

import functools
import importlib
import re
import time
from collections import defaultdict
from contextlib import contextmanager, nullcontext

import psycopg
import sqlalchemy as sa


def statement_key(query) -> str:
    """A statement's shape: column lists, parameter lists and temp-table suffixes folded."""
    try:
        text = query if isinstance(query, str) else query.as_string(None)
    except Exception:  # a label is never worth failing the run for
        text = str(query)
    text = re.sub(r"\s+", " ", str(text)).strip()
    text = re.sub(r"_bulk_(\w+?)_\d+", r"_bulk_\1", text)
    text = re.sub(r"SELECT (DISTINCT )?.*? FROM", r"SELECT \1… FROM", text)
    text = re.sub(r" SET .*? WHERE", " SET … WHERE", text)
    text = re.sub(r"(%\(\w+\)s(::\w+)?|\$\d+|__\[POSTCOMPILE_\w+\])(, (%\(\w+\)s(::\w+)?|\$\d+))*", "?", text)
    # Unambiguous (each name once, separators between): `(\w+(\.\w+)?(, )?)+` backtracked
    # exponentially on "(a_long_name IS NULL" and took seconds per statement.
    text = re.sub(r"\(\w+(?:\.\w+)?(?:, \w+(?:\.\w+)?)*(?:, )?\)", "(…)", text)
    return text[:120]


class Breakdown:
    def __init__(self, targets: list[tuple]):
        self.targets = [(t[0], t[1], t[2] if len(t) > 2 else t[1].split(":")[1]) for t in targets]
        self.totals: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.sql_time = 0.0
        self.sql_count = 0
        self.statements: dict[str, list] = defaultdict(lambda: [0, 0.0])
        self.active = True
        self._undo: list = []
        self._engine = None
        self._postgres = False

    def _timer(self, name: str, func):
        totals, calls = self.totals, self.calls

        @functools.wraps(func)
        def timed(*args, **kwargs):
            if not self.active:
                return func(*args, **kwargs)
            start = time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                totals[name] += time.perf_counter() - start
                calls[name] += 1

        return timed

    def _patch(self, owner, name: str, replacement) -> None:
        self._undo.append((owner, name, getattr(owner, name)))
        setattr(owner, name, replacement)

    def install(self, app, *, active: bool = True) -> "Breakdown":
        self.active = active
        for _level, target, _label in self.targets:
            module_name, attr = target.split(":")
            owner = importlib.import_module(module_name)
            *path, last = attr.split(".")
            try:
                for part in path:
                    owner = getattr(owner, part)
                original = getattr(owner, last)
            except AttributeError:
                print(f"   (breakdown: {target} not found, not timed)")
                continue
            self._patch(owner, last, self._timer(target, original))

        from webapp.extensions import db

        with app.app_context():
            self._engine = db.engine
        self._postgres = self._engine.dialect.name == "postgresql"
        if self._postgres:
            self._install_psycopg()
        else:
            sa.event.listen(self._engine, "before_cursor_execute", self._before)
            sa.event.listen(self._engine, "after_cursor_execute", self._after)
        return self

    def _record(self, key: str, seconds: float) -> None:
        self.sql_time += seconds
        self.sql_count += 1
        entry = self.statements[key]
        entry[0] += 1
        entry[1] += seconds

    def _install_psycopg(self) -> None:
        execute, copy, commit = psycopg.Cursor.execute, psycopg.Cursor.copy, psycopg.Connection.commit
        breakdown = self

        def timed_execute(cursor, query, params=None, **kwargs):
            if not breakdown.active:
                return execute(cursor, query, params, **kwargs)
            start = time.perf_counter()
            try:
                return execute(cursor, query, params, **kwargs)
            finally:
                elapsed = time.perf_counter() - start  # before the label is made
                breakdown._record(statement_key(query), elapsed)

        @contextmanager
        def timed_copy(cursor, statement, *args, **kwargs):
            start = time.perf_counter()
            with copy(cursor, statement, *args, **kwargs) as block:
                yield block
            if breakdown.active:
                breakdown._record(
                    statement_key(statement) + " (with the Python feeding it)", time.perf_counter() - start
                )

        def timed_commit(conn):
            if not breakdown.active:
                return commit(conn)
            start = time.perf_counter()
            try:
                return commit(conn)
            finally:
                breakdown._record("COMMIT", time.perf_counter() - start)

        self._patch(psycopg.Cursor, "execute", timed_execute)
        self._patch(psycopg.Cursor, "copy", timed_copy)
        self._patch(psycopg.Connection, "commit", timed_commit)

    def uninstall(self) -> None:
        for owner, name, original in reversed(self._undo):
            setattr(owner, name, original)
        self._undo.clear()
        if self._engine is not None and not self._postgres:
            sa.event.remove(self._engine, "before_cursor_execute", self._before)
            sa.event.remove(self._engine, "after_cursor_execute", self._after)

    def _before(self, conn, cursor, statement, parameters, context, executemany):
        conn.info["_bench_t0"] = time.perf_counter()

    def _after(self, conn, cursor, statement, parameters, context, executemany):
        start = conn.info.pop("_bench_t0", None)
        if self.active and start is not None:
            elapsed = time.perf_counter() - start  # before the label is made
            self._record(statement_key(statement), elapsed)

    @contextmanager
    def counting(self):
        """Count only inside this block (when installed with active=False)."""
        self.active = True
        try:
            yield
        finally:
            self.active = False

    def report(self, total_seconds: float, requests: int, title: str = "breakdown", statements: int = 12) -> None:
        per = 1000 / requests
        print(f"   {title} (ms per request, inclusive; {requests} requests, {total_seconds * per:.1f} ms each):")
        top = 0.0
        for level, target, label in self.targets:
            if not self.calls[target]:
                continue
            spent = self.totals[target]
            if level == 1:
                top += spent
            print(
                f"   {'  ' * level}{label:<{40 - 2 * level}} {spent * per:8.1f} ms  {spent / total_seconds:6.1%}"
                f"  ({self.calls[target] / requests:.1f} calls)"
            )
        rest = total_seconds - top
        print(f"     {'rest (Flask, werkzeug, routing)':<38} {rest * per:8.1f} ms  {rest / total_seconds:6.1%}")
        kind = "psycopg: every statement, COPY, COMMIT" if self._postgres else "SQLAlchemy statements"
        print(
            f"     {'[all SQL, across the above]':<38} {self.sql_time * per:8.1f} ms  "
            f"{self.sql_time / total_seconds:6.1%}  ({self.sql_count / requests:.1f} per request; {kind})"
        )
        ranked = sorted(self.statements.items(), key=lambda item: -item[1][1])
        for key, (count, seconds) in ranked[:statements]:
            print(f"        {seconds * per:7.1f} ms  {count / requests:4.1f}x  {key}")


def counting(breakdown: "Breakdown | None"):
    """breakdown.counting(), or a no-op context when there is no breakdown."""
    return breakdown.counting() if breakdown is not None else nullcontext()
