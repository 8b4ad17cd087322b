"""`connector sandbox`: serve the simulated Acumatica, Asana and Sage 100 agent on loopback."""

from __future__ import annotations

import threading
import time

from django.conf import settings

NAME = "sandbox"
HELP = "Serve the sandbox Acumatica, Asana and Sage 100 agent on loopback (for `make run` and demos)."


def add_arguments(parser) -> None:
    # Defaults come from sandbox/demo.py when the command runs: `connector --help` imports no simulator.
    parser.add_argument("--host", default="127.0.0.1", help="Loopback address to bind (default 127.0.0.1)")
    parser.add_argument("--acumatica-port", type=int, help="default: the demo tenant's (8101)")
    parser.add_argument("--asana-port", type=int, help="default: the demo tenant's (8102)")
    parser.add_argument("--sage-port", type=int, help="default: the demo tenant's (8103)")
    parser.add_argument(
        "--connector-url",
        default=settings.PUBLIC_BASE_URL,
        help="Where the sandboxes deliver webhooks and push notifications",
    )
    parser.add_argument(
        "--seconds", type=float, default=0, help="Stop after this long (0 = until interrupted)"
    )
    parser.add_argument(
        "--no-first-pass",
        action="store_true",
        help="Do not run each demo flow once when the sandboxes are up (they do by default)",
    )


def _with_default_ports(options) -> dict:
    from sandbox import demo

    options = dict(options)
    options["acumatica_port"] = options.get("acumatica_port") or demo.ACUMATICA_PORT
    options["asana_port"] = options.get("asana_port") or demo.ASANA_PORT
    options["sage_port"] = options.get("sage_port") or demo.SAGE_PORT
    return options


def build(options) -> dict:
    """The three sandboxes, seeded with the demo data and wired to the demo tenant (when it exists)."""
    from integrations.models import AcumaticaConnection
    from sandbox import acumatica as acu_sim
    from sandbox import asana as asana_sim
    from sandbox import demo

    options = _with_default_ports(options)

    acumatica = acu_sim.build_demo(demo.acumatica_url(options["host"], options["acumatica_port"]))
    conn = AcumaticaConnection.objects.filter(tenant__slug=demo.TENANT_SLUG).first()
    if conn is not None:
        acumatica.configure_push(
            f"{options['connector_url']}/hooks/acumatica/{conn.push_uuid}/",
            conn.push_header_name,
            conn.push_secret,
        )
    # Served, Asana deletes a failing webhook only after its 24-hour failure window (§6.5).
    asana = asana_sim.build_demo(
        demo.asana_url(options["host"], options["asana_port"]), allow_localhost=True, max_delivery_failures=0
    )
    demo.seed_purchase_request(asana)  # an approved purchase request for the Sage 100 demo
    return {"acumatica": acumatica, "asana": asana}


def run(options, out) -> int:
    from waitress.server import create_server

    from sage100_agent.config import from_dict
    from sage100_agent.server import create_app, start_in_thread
    from sandbox import demo

    options = _with_default_ports(options)

    if options["host"] not in ("127.0.0.1", "localhost", "::1"):
        out.error("The sandboxes serve loopback only.")
        return 2
    sims = build(options)
    servers = []
    for name, port in (("acumatica", options["acumatica_port"]), ("asana", options["asana_port"])):
        server = create_server(sims[name].wsgi_app, host=options["host"], port=port, threads=8)
        threading.Thread(target=server.run, name=f"sandbox-{name}", daemon=True).start()
        servers.append(server)
        out.write(f"{name:10s} sandbox on {sims[name].base_url}")
    # Events reach the connector by themselves, batched and signed, as Asana sends them (§6.4–6.5).
    sims["asana"].start_delivery()
    out.write(
        f"{'asana':10s} delivers webhook events by itself (controls: {sims['asana'].base_url}/_sandbox/)"
    )
    state_dir = settings.VAR_DIR / "sandbox"
    state_dir.mkdir(parents=True, exist_ok=True)
    agent = start_in_thread(
        create_app(from_dict(demo.sage_agent_config(state_dir, options["sage_port"]), env={})),
        port=options["sage_port"],
    )
    out.write(f"{'sage100':10s} agent   on {agent.url} (simulated backend)")
    out.success("Sandboxes running; Ctrl-C stops them.")
    from integrations.models import Tenant

    tenant = Tenant.objects.filter(slug=demo.TENANT_SLUG, active=True).first()
    if tenant is not None and not options.get("no_first_pass"):
        from integrations.cli.first_pass import first_pass

        out.write(f"First pass of the {tenant.slug} tenant's flows against the sandboxes:")
        first_pass(tenant, out)
    try:
        deadline = time.monotonic() + options["seconds"] if options["seconds"] else None
        while deadline is None or time.monotonic() < deadline:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        sims["asana"].stop_delivery()
        for server in servers:
            server.close()
        agent.stop()
    return 0
