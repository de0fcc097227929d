"""What going through the data router costs a query, against a direct connection, in one run.

    .venv/bin/python bench/data_router.py [--stack autoscaling] [--rounds 3] [--seconds 10] [--clients 3]

pgbench's select-only transaction (one primary-key SELECT) runs from a container on the
stack's network, against the PostgreSQL primary directly (``tasks.postgres:5432``) and
through the data router's write port (``tasks.data-router:5432``, which leads to the same
primary), alternating for ``--rounds`` rounds, so that both see the same machine. Each
round reports pgbench's transactions a second and mean latency; the medians are compared.
Needs the deployed stack (./deploy-autoscaling.sh). pgbench's tables go into a database
``bench`` on the primary, made on first use.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess

ROUTES = {"direct": "tasks.postgres", "router": "tasks.data-router"}


def container_of(service: str) -> str:
    found = subprocess.run(
        ["docker", "ps", "-q", "--filter", f"label=com.docker.swarm.service.name={service}"],
        check=True, capture_output=True, text=True,
    ).stdout.split()  # fmt: skip
    if not found:
        raise SystemExit(f"no running container of {service}: deploy the stack first")
    return found[0]


def prepare(primary: str) -> None:
    """The bench database with pgbench's tables at scale 1 (100,000 accounts), once."""
    as_postgres = ["docker", "exec", "-u", "postgres", primary]
    query = "SELECT 1 FROM pg_database WHERE datname = 'bench'"
    exists = subprocess.run([*as_postgres, "psql", "-Atc", query], check=True, capture_output=True, text=True)
    if exists.stdout.strip() != "1":
        subprocess.run([*as_postgres, "createdb", "bench"], check=True)
        subprocess.run([*as_postgres, "pgbench", "-q", "-i", "-s", "1", "bench"], check=True)


def run_pgbench(image: str, host: str, arguments: argparse.Namespace) -> tuple[float, float]:
    """pgbench -S against ``host``: (transactions a second, mean latency in ms)."""
    clients = str(arguments.clients)
    output = subprocess.run(
        ["docker", "run", "--rm", "--network", f"{arguments.stack}_backend", "-e",
         f"PGPASSWORD={arguments.password}", image, "pgbench", "-n", "-S", "-h", host, "-U", "postgres",
         "-c", clients, "-j", clients, "-T", str(arguments.seconds), "bench"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    tps = re.search(r"tps = ([0-9.]+)", output)
    latency = re.search(r"latency average = ([0-9.]+) ms", output)
    if tps is None or latency is None:
        raise SystemExit(f"unexpected pgbench output:\n{output}")
    return float(tps.group(1)), float(latency.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", default="autoscaling")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument(
        "--clients", type=int, default=3, help="connections (the router lets 4 reach the primary)"
    )
    parser.add_argument("--password", default="autoscaler-demo", help="DATABASE_PASSWORD of the stack")
    arguments = parser.parse_args()
    primary = container_of(f"{arguments.stack}_postgres")
    image = subprocess.run(
        ["docker", "inspect", "-f", "{{.Config.Image}}", primary], check=True, capture_output=True, text=True
    ).stdout.strip()
    prepare(primary)
    results: dict[str, list[tuple[float, float]]] = {route: [] for route in ROUTES}
    for round_number in range(1, arguments.rounds + 1):
        for route, host in ROUTES.items():
            tps, latency = run_pgbench(image, host, arguments)
            results[route].append((tps, latency))
            print(f"round {round_number} {route:>6}: {tps:9.0f} queries/s  {latency:6.3f} ms mean latency")
    median = {
        route: (statistics.median(tps for tps, _ in runs), statistics.median(ms for _, ms in runs))
        for route, runs in results.items()
    }
    (direct_tps, direct_ms), (router_tps, router_ms) = median["direct"], median["router"]
    print(f"median  direct: {direct_tps:9.0f} queries/s  {direct_ms:6.3f} ms")
    print(f"median  router: {router_tps:9.0f} queries/s  {router_ms:6.3f} ms")
    added = 1000 * (router_ms - direct_ms)
    print(f"the router adds {added:.0f} µs a query ({router_tps / direct_tps - 1:+.1%} queries/s)")


if __name__ == "__main__":
    main()
