"""The playground: a face for the sandboxes `make run` serves — SIMULATED systems only.

Pages in the console (login required, scoped to the demo tenant like the rest of the console) that
show the simulated Acumatica's bills and purchase orders and the simulated Asana projects as boards,
with buttons to act as the people who use them (enter, edit or delete a bill; approve, reject, rename
or move a task; delete the webhook) and to inject faults (a 429 storm, a lost answer, no free API
seats) — and, beside them, live, what ml-connector did about each: its audit entries, record links
and received events, read from the product's own tables.

It is not product code. The sandboxes run in another process (`connector sandbox`), so everything
here talks to them over HTTP: their control API (`POST <base>/_sandbox/<name>`), which bypasses faults,
seats and rate limits, so the playground never competes with the connector it is showing. The product
(integrations/, audit/, mappings/) never imports this package; connector_site/urls.py mounts it only
when SANDBOX_PLAYGROUND is on (`make run` turns it on), and otherwise its URLs do not exist.
"""
