"""``cpool ray``: a local demo Ray cluster (up/down) and the pool a Ray cluster offers (status)."""

from __future__ import annotations

import os
from typing import Annotated

import typer
from rich.table import Table

from computepool.cli.common import console, fail, load_or_exit
from computepool.cli.conventions import CpoolTyper

PortOpt = Annotated[int, typer.Option("--port", help="The head's GCS port.")]
LOCAL_HOSTS = ("127.0.0.1", "localhost")


def demo_port(address: str) -> int:
    """The GCS port of a demo cluster on this machine from ``HOST:PORT`` (ValueError if it is
    not one)."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or host not in LOCAL_HOSTS or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(
            f"--address {address!r}: expected 127.0.0.1:PORT (only a demo cluster on this "
            "machine can be stopped here)"
        )
    return int(port)


def register(app: typer.Typer) -> None:
    ray_app = CpoolTyper(
        help="The Ray backend: a local demo cluster, and the pool a Ray cluster offers."
    )
    app.add_typer(ray_app, name="ray")

    @ray_app.command("up")
    def up(
        demo: Annotated[
            bool,
            typer.Option(
                "--demo/--no-demo",
                help="Start a head and 4 worker nodes with fake accelerators on this machine.",
            ),
        ] = False,
        port: PortOpt = 6379,
        client_port: Annotated[
            int, typer.Option("--client-port", help="The head's Ray Client port (ray://).")
        ] = 10001,
    ) -> None:
        """Start a local multi-node Ray cluster (for a real cluster, see docs/ray.md)."""
        from computepool.backends import ray_demo

        if not demo:
            raise fail(
                "only --demo is supported here: on real machines run `ray start` on each "
                "node (docs/ray.md: On real machines)"
            )
        try:
            ray_demo.up(port, client_port)
        except (RuntimeError, OSError, ValueError) as exc:
            raise fail(str(exc)) from None
        t = Table(title=f"Demo Ray cluster on 127.0.0.1:{port}")
        for col in ("node", "accelerators", "region", "island"):
            t.add_column(col)
        for n in ray_demo.DEMO_NODES:
            t.add_row(n.name, f"{n.count} x {n.accelerator}", n.region, n.island)
        console.print(t)
        client = ray_demo.client_server_address(port) or f"ray://127.0.0.1:{client_port}"
        console.print(
            f"serve it:  cpool serve --backend {client}\n"
            f"      or:  RAY_ADDRESS=127.0.0.1:{port} cpool serve --backend ray\n"
            f"stop it:   cpool ray down --address 127.0.0.1:{port}"
        )

    @ray_app.command("down")
    def down(
        address: Annotated[
            str, typer.Option("--address", help="The demo head's address, 127.0.0.1:PORT.")
        ] = "127.0.0.1:6379",
        port: Annotated[
            int | None, typer.Option("--port", hidden=True, help="Old spelling: the GCS port.")
        ] = None,
    ) -> None:
        """Stop the demo cluster started by `cpool ray up --demo` (only that one)."""
        from computepool.backends import ray_demo

        if port is None:
            port = load_or_exit(lambda: demo_port(address))
        n = ray_demo.down(port)
        console.print(f"stopped {n} processes of the demo cluster on port {port}")

    @ray_app.command("status")
    def status(
        address: Annotated[
            str | None,
            typer.Option("--address", help="ray://HOST:PORT or HOST:PORT (default: $RAY_ADDRESS)."),
        ] = None,
    ) -> None:
        """The accelerator nodes of a Ray cluster and the pool computepool reads from them."""
        import ray

        from computepool.backends.ray_inventory import (
            connect,
            current_nodes,
            parse_backend,
            pool_from_nodes,
        )

        backend = "ray" if address is None else address
        if address is not None and not address.startswith("ray://"):
            backend = "ray"
        env = dict(os.environ)
        if address is not None and not address.startswith("ray://"):
            env["RAY_ADDRESS"] = address
        addr = load_or_exit(lambda: parse_backend(backend, env))
        load_or_exit(lambda: connect(addr))
        try:
            nodes = load_or_exit(lambda: current_nodes(ray.nodes()))
            pool = load_or_exit(lambda: pool_from_nodes([n for n in nodes if n.alive]))
        finally:
            ray.shutdown()
        t = Table(title=f"Ray accelerator nodes at {addr.init}")
        for col in ("node", "alive", "accelerators", "region", "island", "Ray node id"):
            t.add_column(col)
        for n in nodes:
            t.add_row(
                n.name,
                "yes" if n.alive else "no",
                f"{n.count} x {n.accelerator}",
                n.region,
                n.island,
                n.node_id[:12],
            )
        console.print(t)
        console.print("pool flavors: " + ", ".join(f"{k}={v}" for k, v in pool.summary().items()))
