"""Onboarding a customer: what the setup wizard and `connector setup` ask the customer's systems.

Flow floor: it reads Acumatica and Asana through their clients (integrations/acumatica, asana),
uses the mappings logic and the documents flow's pure planner, and writes nothing to either system.
The interfaces (integrations/setup/ for the step engine, console/wizard.py, cli/setup.py) call only
the public functions below.

    acumatica.discover_endpoints(url)       build and endpoint versions from GET /entity (anonymous)
    acumatica.verify_credentials(conn)       sign in, read, list actions; lines in the operator's words
    asana_discovery.workspaces(conn)        the token's user and workspaces
    asana_discovery.projects(conn, ws)      the workspace's projects; sections and fields of one
    proposal.propose(kind, specs, vendors)  a field mapping by name and type, vendor options matched
    fit.fit_report(tenant)                  the read-only dry run on the customer's last documents
    push.push_settings(conn)                the URL and header for Acumatica's SM302000 screen
"""
