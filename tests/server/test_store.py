"""The store: migrations build exactly the models' schema; tokens are stored hashed."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select

from computepool.server import store
from computepool.server.db import Base, TokenRow, make_engine, migrate, normalise_url, sessions
from computepool.server.schemas import TenantIn


def test_migrations_match_the_models(db_url):
    engine = make_engine(db_url)
    migrate(engine)
    migrate(engine)  # idempotent
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    assert diff == []


def test_tokens_are_stored_hashed(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    migrate(engine)
    with sessions(engine)() as s:
        t, _ = store.upsert_tenant(s, TenantIn(name="acme"), "test")
        s.flush()
        _, token = store.create_token(s, "tenant", t, "test")
        s.commit()
        hashes = list(s.scalars(select(TokenRow.token_hash)))
        assert token not in hashes and hashes == [store.hash_token(token)]
        p = store.principal_for(s, token)
        assert p is not None and p.tenant == "acme" and not p.is_admin
        assert store.principal_for(s, token + "x") is None
    engine.dispose()


def test_postgresql_urls_use_psycopg3():
    assert normalise_url("postgresql://u@h:1/db") == "postgresql+psycopg://u@h:1/db"
    assert normalise_url("sqlite:///x.db") == "sqlite:///x.db"
