"""``cpool agent`` (one per cluster, docs/federation.md) and ``cpool admin cluster``."""

from __future__ import annotations

import logging
import re
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from computepool.cli.common import console, fail, load_or_exit
from computepool.cli.conventions import CpoolTyper
from computepool.cli.output import Col, Output, OutputOpt, emit
from computepool.cli.serve_cmd import DataDirOpt, DbOpt

_CLUSTER = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


def _cluster_name(name: str) -> str:
    if not _CLUSTER.match(name):
        raise fail(f"cluster name {name[:80]!r}: lower-case letters, digits and dashes, 1-63")
    return name


def read_token(path: Path) -> str:
    try:
        token = path.read_text(encoding="utf-8", errors="strict")[:1024].strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise fail(f"{path}: cannot read the token: {exc}") from None
    if not token or len(token) > 256 or any(c.isspace() for c in token):
        raise fail(f"{path}: not a token (one line, no spaces, at most 256 characters)")
    return token


def register_admin(admin: typer.Typer, sessions_of: Callable) -> None:
    cluster = CpoolTyper(help="Clusters whose agents may join (tokens shown once).")
    admin.add_typer(cluster, name="cluster")

    @cluster.command("add")
    def cluster_add(
        name: Annotated[str, typer.Argument(help="The cluster's name (a DNS label).")],
        token_file: Annotated[
            Path | None,
            typer.Option("--token-file", help="Write the token to this file (0600), not stdout."),
        ] = None,
        data_dir: DataDirOpt = None,
        db: DbOpt = None,
    ) -> None:
        """Issue the token a cluster's `cpool agent` registers with."""
        from computepool.server import clusters_store

        S = sessions_of(data_dir, db)
        with S() as s:
            try:
                _row, token = clusters_store.create_cluster(s, _cluster_name(name), "cli")
            except ValueError as exc:
                raise fail(str(exc)) from None
            s.commit()
        if token_file is None:
            print(token)
            return
        token_file.touch(mode=0o600)
        token_file.chmod(0o600)
        token_file.write_text(token + "\n")
        console.print(f"cluster {name}: token written to {token_file}")

    @cluster.command("list")
    def cluster_list(
        output: OutputOpt = Output.table, data_dir: DataDirOpt = None, db: DbOpt = None
    ) -> None:
        """Clusters on record (their live state: GET /v1/clusters or the dashboard)."""
        from computepool.server import clusters_store

        with sessions_of(data_dir, db)() as s:
            rows = [
                {
                    "name": r.name,
                    "epoch": r.epoch,
                    "regions": ",".join((r.inventory or {}).get("regions", [])),
                    "state": "revoked" if r.revoked_at else "active",
                }
                for r in clusters_store.clusters(s)
            ]
        cols = [
            Col("name", lambda r: r["name"], key=True),
            Col("state", lambda r: r["state"]),
            Col("epoch", lambda r: str(r["epoch"])),
            Col("regions", lambda r: r["regions"]),
        ]
        emit(output, cols, rows, data=rows)

    @cluster.command("revoke")
    def cluster_revoke(
        name: Annotated[str, typer.Argument(help="The cluster's name.")],
        data_dir: DataDirOpt = None,
        db: DbOpt = None,
    ) -> None:
        """Revoke a cluster's token: its agent is refused from its next request on."""
        from computepool.server import clusters_store

        with sessions_of(data_dir, db)() as s:
            if not clusters_store.revoke_cluster(s, name, "cli"):
                raise fail(f"no active cluster {name!r}")
            s.commit()
        console.print(f"cluster {name}: revoked")


def register(app: typer.Typer) -> None:
    @app.command()
    def agent(
        control_plane: Annotated[
            str, typer.Option("--control-plane", help="The control plane's URL.")
        ],
        token_file: Annotated[
            Path, typer.Option("--token-file", help="File holding the cluster's token.")
        ],
        cluster: Annotated[str, typer.Option("--cluster", help="This cluster's name.")],
        pool: Annotated[
            str | None,
            typer.Option(
                "--pool",
                help="This cluster's nodes: a pool YAML or name (local backend; on Ray the "
                "pool is read from the Ray cluster).",
            ),
        ] = None,
        data_dir: Annotated[
            Path,
            typer.Option("--data-dir", help="The agent's own runs, work and checkpoint dirs."),
        ] = Path(".cpool-agent"),
        backend: Annotated[
            str,
            typer.Option(
                "--backend",
                help="What runs the workers: local, or a Ray cluster: ray (RAY_ADDRESS) or "
                "ray://HOST:PORT.",
            ),
        ] = "local",
        checkpoint_dir: Annotated[
            Path | None,
            typer.Option(
                "--checkpoint-dir",
                help="Where workers keep checkpoints; shared with other clusters, a requeued "
                "job resumes from its checkpoint there (default: DATA_DIR/checkpoints).",
            ),
        ] = None,
        ray_regions: Annotated[
            str | None,
            typer.Option(
                "--regions",
                help="With --backend ray: run only the Ray nodes of these regions "
                "(comma-separated; default: every node of the Ray cluster).",
            ),
        ] = None,
        rulebook: Annotated[
            str | None,
            typer.Option("--rulebook", help="Residency rules the agent judges starts by."),
        ] = None,
        grace_seconds: Annotated[
            float, typer.Option("--grace-seconds", help="SIGTERM to SIGKILL at a stop.")
        ] = 10.0,
        sandbox: Annotated[
            str, typer.Option("--sandbox", help="Worker sandbox: auto, on or off.")
        ] = "auto",
        allow_unsandboxed: Annotated[
            bool,
            typer.Option(
                "--allow-unsandboxed/--no-allow-unsandboxed",
                help="Run several tenants' jobs without a sandbox.",
            ),
        ] = False,
        log_level: Annotated[str, typer.Option("--log-level", help="Log level.")] = "info",
    ) -> None:
        """Run one cluster's workers for a federated control plane (docs/federation.md)."""
        from computepool.admission.rulebook import load_rulebook
        from computepool.catalog.pools import load_pool
        from computepool.catalog.regions import load_regions
        from computepool.federation.agent import Agent, AgentConfig
        from computepool.server.runtime import (
            ServeSettings,
            is_ray,
            private_data_dir,
            sandbox_status,
        )

        ray = is_ray(backend)
        if backend != "local" and not ray:
            raise fail(f"--backend {backend[:80]!r}: known: local, ray, ray://HOST:PORT")
        if ray and pool is not None:
            raise fail("--pool: with --backend ray the pool is read from the Ray cluster")
        if not ray and pool is None:
            raise fail("--pool: the local backend needs this cluster's nodes")
        if sandbox not in ("auto", "on", "off"):
            raise fail(f"--sandbox {sandbox!r}: known: auto, on, off")
        token = read_token(token_file)
        make_cluster = None
        if ray:
            the_pool, make_cluster = _open_ray(backend, checkpoint_dir, _regions(ray_regions))
        elif ray_regions is not None:
            raise fail("--regions: only with --backend ray (a local pool file lists its nodes)")
        else:
            the_pool = load_or_exit(lambda: load_pool(pool))
        rules = load_or_exit(lambda: load_rulebook(rulebook))
        regions = {n: r.jurisdiction for n, r in load_regions().items()}
        regions.update({n: r.jurisdiction for n, r in the_pool.regions.items()})
        logging.basicConfig(
            level=log_level.upper(), format="%(asctime)s agent %(levelname)s %(message)s"
        )
        logging.getLogger("httpx").setLevel(logging.WARNING)
        d = private_data_dir(data_dir.resolve())
        st = sandbox_status(
            ServeSettings(data_dir=d, sandbox=sandbox, allow_unsandboxed=allow_unsandboxed)
        )
        cfg = AgentConfig(
            url=control_plane.rstrip("/"),
            token=token,
            cluster=_cluster_name(cluster),
            pool=the_pool,
            data_dir=d,
            rulebook=rules,
            regions=regions,
            grace_s=grace_seconds,
            sandbox=st,
            checkpoint_dir=checkpoint_dir.resolve() if checkpoint_dir else None,
        )
        a = Agent(cfg, make_cluster=make_cluster)
        signal.signal(signal.SIGTERM, lambda *_: a.stop_event.set())
        signal.signal(signal.SIGINT, lambda *_: a.stop_event.set())
        try:
            a.run()
        finally:
            if ray:
                import ray as ray_mod

                if ray_mod.is_initialized():
                    ray_mod.shutdown()


def _regions(text: str | None) -> frozenset[str] | None:
    if text is None:
        return None
    names = frozenset(r.strip() for r in text.split(",") if r.strip())
    if not names or len(names) > 64 or any(not _CLUSTER.match(r) for r in names):
        raise fail(f"--regions {text[:80]!r}: comma-separated region names")
    return names


def _open_ray(
    backend: str, checkpoint_dir: Path | None, regions: frozenset[str] | None
) -> tuple[Any, Callable]:
    """The Ray cluster's pool, and a factory of its backend that stays connected when a
    session is dropped (the agent disconnects when it exits)."""
    import os

    from computepool.backends.ray_inventory import RayBackendError
    from computepool.backends.ray_open import open_ray

    try:
        the_pool, factory = open_ray(
            backend, os.environ, checkpoint_dir.resolve() if checkpoint_dir else None, regions
        )
    except (RayBackendError, ValueError, ConnectionError) as exc:
        raise fail(f"--backend {backend[:80]}: {exc}") from None

    def make(*args: Any) -> Any:
        c = factory(*args)
        c.disconnect_on_shutdown = False
        return c

    return the_pool, make
