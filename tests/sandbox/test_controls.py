"""The sandboxes' control API: the same controls in-process and over HTTP, outside faults and contracts."""

from __future__ import annotations

import json

import requests
import responses

from sandbox import asana as asana_sim


def test_controls_are_listed_and_run_in_process_and_over_http():
    sim = asana_sim.build_demo(strict_contract=True)
    assert {"inject_fault", "clear_faults"} <= set(sim.controls())
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        sim.mount(rsps)
        listed = requests.get(f"{sim.base_url}/_sandbox/", timeout=5)
        assert "inject_fault" in listed.json()["data"]
        made = requests.post(
            f"{sim.base_url}/_sandbox/inject_fault",
            data=json.dumps({"kind": "status", "status": 503, "path": "/users/me", "times": 2}),
            timeout=5,
        )
        assert made.status_code == 200, made.text
        assert len(sim.faults.pending) == 1
        # A control is never the victim of a fault it queued, nor of the contract check.
        assert requests.post(f"{sim.base_url}/_sandbox/clear_faults", timeout=5).json() == {"data": 1}
        assert sim.faults.pending == []
        unknown = requests.post(f"{sim.base_url}/_sandbox/no_such_control", timeout=5)
        assert unknown.status_code == 404
        bad = requests.post(f"{sim.base_url}/_sandbox/inject_fault", data=b"[1]", timeout=5)
        assert bad.status_code == 400
