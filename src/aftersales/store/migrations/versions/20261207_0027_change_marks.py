"""Change marks: a per-process copy of the category terms knows when another process changed them (issue 13).

``change_marks`` holds one value per kind of rarely changed rows (``terms``: ``categories`` and
``category_versions``). On PostgreSQL every statement that changes either table — whoever sends it: the API, the
CLI, a migration, psql — sets the ``terms`` mark to the next value of a sequence, in the same transaction (a
statement trigger). A sequence never gives a value twice, even to a transaction that rolls back, so a mark read
together with the rows names exactly those rows: a copy kept with its mark is still the database's as long as the
mark read later is the same (store/terms.py). SQLite keeps no copy (no round trips to save): the row is there, no
trigger.

Revision ID: 20261207_0027
Revises: 20261207_0026
Create Date: 2026-12-07 05:20:00
"""
import sqlalchemy as sa
from alembic import op

revision = '20261207_0027'
down_revision = '20261207_0026'
branch_labels = None
depends_on = None

TABLES = ("categories", "category_versions")


def upgrade() -> None:
    op.create_table(
        "change_marks",
        sa.Column("name", sa.String(40), primary_key=True),
        sa.Column("mark", sa.BigInteger, nullable=False),
    )
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        bind.execute(sa.text("CREATE SEQUENCE change_marks_seq"))
        bind.execute(sa.text("INSERT INTO change_marks (name, mark) VALUES ('terms', nextval('change_marks_seq'))"))
        bind.execute(sa.text(
            "CREATE FUNCTION change_marks_terms() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$ BEGIN "
            "UPDATE change_marks SET mark = nextval('change_marks_seq') WHERE name = 'terms'; RETURN NULL; END $$"))
        for table in TABLES:
            bind.execute(sa.text(
                f"CREATE TRIGGER {table}_change_mark AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION change_marks_terms()"))
    else:
        bind.execute(sa.text("INSERT INTO change_marks (name, mark) VALUES ('terms', 0)"))


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        for table in TABLES:
            bind.execute(sa.text(f"DROP TRIGGER {table}_change_mark ON {table}"))
        bind.execute(sa.text("DROP FUNCTION change_marks_terms()"))
        bind.execute(sa.text("DROP SEQUENCE change_marks_seq"))
    op.drop_table("change_marks")
