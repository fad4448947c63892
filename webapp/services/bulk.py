"""Set-based inserts for bulk paths (enrollment, event ingestion).

The ORM adds one object at a time (about 8k rows/s on PostgreSQL here); these helpers
insert thousands of rows per statement with ON CONFLICT and RETURNING. On PostgreSQL the
rows go through COPY into a temporary table and one INSERT ... SELECT (about 100k rows/s);
on SQLite through multi-row INSERT statements. Both run inside the session's transaction.
"""

from collections.abc import Callable, Sequence
from datetime import timedelta

import sqlalchemy as sa
from psycopg.types.json import Jsonb
from sqlalchemy.dialects import postgresql, sqlite

from webapp.extensions import db

SQLITE_MAX_VARIABLES = 32_000
# Up to this many values (rows x columns) a multi-row INSERT beats COPY; above it, compiling and
# binding thousands of parameters costs more than COPY's extra round trips.
SMALL_BATCH_VALUES = 400


def dialect_name() -> str:
    return db.session.get_bind().dialect.name


def one_of(column: sa.ColumnElement, values: Sequence) -> sa.ColumnElement[bool]:
    """`column IN (values)`. On PostgreSQL as `column = ANY(array)`: one parameter instead of a
    thousand to send, and a plan that does not grow with the list."""
    if dialect_name() == "postgresql":
        return column == sa.any_(sa.bindparam(None, list(values), type_=postgresql.ARRAY(column.type)))
    return column.in_(values)


def bulk_insert(
    table: sa.Table,
    rows: Sequence[dict],
    *,
    conflict: Sequence[str],
    returning: Sequence[sa.ColumnElement],
    update: Callable[[sa.ColumnCollection, sa.ColumnCollection], dict] | None = None,
) -> list[sa.Row]:
    """INSERT `rows` into `table`; rows that hit the `conflict` key are skipped, or updated
    with `update(table.c, excluded)` when given. Returns the `returning` columns of the rows
    inserted (and updated). Rows must all have the same keys and not repeat a conflict key.
    Without `conflict` columns, a row that repeats any unique key of the table is skipped.
    """
    if not rows:
        return []
    columns = list(rows[0].keys())
    if dialect_name() == "postgresql":
        if len(rows) * len(columns) <= SMALL_BATCH_VALUES:
            # One multi-row INSERT is one round trip; COPY through a temp table costs three more.
            stmt = _on_conflict(postgresql.insert(table).values(list(rows)), table, conflict, update)
            return list(db.session.connection().execute(stmt.returning(*returning)).all())
        return _postgresql(table, rows, columns, conflict, returning, update)
    return _sqlite(table, rows, columns, conflict, returning, update)


def _on_conflict(stmt, table, conflict, update):
    if update is None:  # no `conflict` columns: any unique key that a row repeats skips it
        return stmt.on_conflict_do_nothing(index_elements=list(conflict) or None)
    return stmt.on_conflict_do_update(index_elements=list(conflict), set_=update(table.c, stmt.excluded))


def _sqlite(table, rows, columns, conflict, returning, update) -> list[sa.Row]:
    # One statement, compiled once and cached; SQLAlchemy sends the rows as multi-row INSERTs
    # ("insertmanyvalues"), in pages that stay under SQLite's limit on bound parameters.
    stmt = _on_conflict(sqlite.insert(table), table, conflict, update).returning(*returning)
    page = max(1, min(1000, SQLITE_MAX_VARIABLES // len(columns)))
    stmt = stmt.execution_options(insertmanyvalues_page_size=page)
    return list(db.session.connection().execute(stmt, list(rows)).all())


def _copy_value(value):
    return Jsonb(value) if isinstance(value, (dict, list)) else value


def _postgresql(table, rows, columns, conflict, returning, update) -> list[sa.Row]:
    connection = db.session.connection()
    raw = connection.connection.driver_connection
    tmp = f"_bulk_{table.name}_{abs(hash(tuple(columns))) % 10_000_000}"
    column_list = ", ".join(columns)
    created = connection.connection.info.setdefault("drumbeat_temp_tables", set())
    with raw.cursor() as cursor:
        if tmp not in created:  # temp tables live as long as the pooled connection
            cursor.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {tmp} ON COMMIT DELETE ROWS AS "
                f"SELECT {column_list} FROM {table.name} WITH NO DATA"
            )
            created.add(tmp)
        cursor.execute(f"TRUNCATE {tmp}")
        with cursor.copy(f"COPY {tmp} ({column_list}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row([_copy_value(row[c]) for c in columns])
    source = sa.table(tmp, *[sa.column(c, table.c[c].type) for c in columns])
    stmt = postgresql.insert(table).from_select(columns, sa.select(*source.c))
    stmt = _on_conflict(stmt, table, conflict, update).returning(*returning)
    return list(connection.execute(stmt).all())


def insert_each(table: sa.Table, columns: list[str], rows: list[tuple], values: dict) -> None:
    """INSERT one row into `table` per tuple of `rows` (values of `columns`), with `values` for
    the other columns. On PostgreSQL it is one statement (the rows as arrays, joined back with
    unnest): no thousand parameters to bind and send; elsewhere an executemany."""
    if dialect_name() == "postgresql":
        each = _unnest({name: table.c[name].type for name in columns}, rows)
        constants = [sa.literal(value, table.c[name].type) for name, value in values.items()]
        select = sa.select(*[each.c[name] for name in columns], *constants)
        db.session.execute(sa.insert(table).from_select([*columns, *values], select))
        return
    db.session.execute(sa.insert(table), [{**values, **dict(zip(columns, row, strict=True))} for row in rows])


def update_each(
    statement: sa.Update,
    key: sa.Column,
    columns: dict[str, sa.Column],
    rows: list[tuple],
    *,
    where: Callable[[dict[str, sa.ColumnElement]], sa.ColumnElement[bool]] | None = None,
    returning: Sequence[sa.ColumnElement] = (),
) -> list[sa.Row]:
    """Run `statement` once per row, for the row whose `key` is the tuple's first value, setting
    `columns` to the following values. `where(values)` adds a condition on each row's new values
    (a dict of expressions by column name). On PostgreSQL it is one statement for all the rows
    (the values as arrays, joined back with unnest); elsewhere one execution per row. Returns the
    `returning` columns of the rows changed (nothing when `returning` is empty)."""
    if not rows:
        return []
    names = ["key", *columns]
    if dialect_name() == "postgresql":
        each = _unnest(dict(zip(names, [key.type, *(c.type for c in columns.values())], strict=True)), rows)
        statement = statement.where(key == each.c.key).values(
            {column: each.c[name] for name, column in columns.items()}
        )
        if where is not None:
            statement = statement.where(where({name: each.c[name] for name in columns}))
        if not returning:
            db.session.execute(statement)
            return []
        return list(db.session.execute(statement.returning(*returning)))
    new_values = {name: sa.bindparam(f"each_{name}", type_=column.type) for name, column in columns.items()}
    statement = statement.where(key == sa.bindparam("each_key", type_=key.type)).values(
        {column: new_values[name] for name, column in columns.items()}
    )
    if where is not None:
        statement = statement.where(where(new_values))
    params = [dict(zip([f"each_{name}" for name in names], row, strict=True)) for row in rows]
    if not returning:
        db.session.execute(statement, params)
        return []
    statement = statement.returning(*returning)
    return [changed for one in params for changed in db.session.execute(statement, one)]


def _unnest(types: dict[str, sa.types.TypeEngine], rows: list[tuple]):
    """PostgreSQL: `rows` as a table named `each` with the columns `types`, sent as one array per column."""
    arrays = [
        sa.bindparam(f"each_{name}", [row[i] for row in rows], type_=postgresql.ARRAY(type_))
        for i, (name, type_) in enumerate(types.items())
    ]
    columns = [sa.column(name, type_) for name, type_ in types.items()]
    return sa.func.unnest(*arrays).table_valued(*columns).render_derived(name="each")


def plus(moment: sa.ColumnElement, delta: timedelta) -> sa.ColumnElement:
    """`moment + delta` in SQL, for a UTC datetime column or expression and a whole number of
    seconds. SQLite keeps datetimes as text (`YYYY-MM-DD HH:MM:SS.ffffff`): its datetime()
    drops the fraction, which whole seconds leave unchanged, so the text's own is put back and
    the result compares and reads like any stored value."""
    if dialect_name() == "postgresql":
        return moment + sa.bindparam(None, delta, type_=sa.Interval())
    seconds = int(delta.total_seconds())
    return sa.func.datetime(moment, f"{seconds:+d} seconds").op("||")(sa.func.substr(moment, 20))
