"""The store: migrations build exactly the models' schema; tokens are stored hashed."""

import pytest
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


def test_a_failed_round_write_keeps_its_events_for_the_next_round(tmp_path):
    from computepool.model.workload import Workload
    from computepool.server.live_io import Event, JobIndex, StoreSink

    class Boom(Exception):
        pass

    class FailingSession:
        def scalars(self, *_a, **_k):
            raise Boom

        def execute(self, *_a, **_k):
            raise Boom

        def rollback(self):
            pass

    index = JobIndex(Workload.empty())
    index.ids.append(1)
    sink = StoreSink(index, cluster=None, pool=None)  # type: ignore[arg-type]
    sink.buffer.append(Event(0, "succeeded", 1.0, ""))
    with pytest.raises(Boom):
        sink.flush(FailingSession())  # type: ignore[arg-type]
    assert [e.kind for e in sink.buffer] == ["succeeded"]


def test_downgrade_removes_everything(tmp_path):
    from importlib import resources

    from alembic import command
    from alembic.config import Config
    from sqlalchemy import inspect

    engine = make_engine(f"sqlite:///{tmp_path / 'd.db'}")
    migrate(engine)
    cfg = Config()
    cfg.set_main_option(
        "script_location", str(resources.files("computepool.server") / "migrations")
    )
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    engine.dispose()
