"""The scale-out scenario: the same documents processed concurrently by a real deployment, faults on
the way, then the invariants read from the sandboxes and the deployment's database.

    1. sync      poll passes of both flows at once, every document queued twice (back to back, so
                 two workers take the same document together), more passes and pushes while
                 documents change in Acumatica; worker processes SIGKILLed mid-run.
    2. recover   what the operator's schedule does next: once the create lease of a killed worker has
                 passed, another poll pass of each flow (reconcile by the ERP reference, no duplicate).
    3. approve   Asana webhooks registered by a worker (handshake through the web process), bills
                 approved in Asana, the events delivered twice and queued twice, and the catch-up
                 poll run beside them.

Invariants: one Asana task per document (by ERP reference in Asana and by RecordLink), every link
linked to that task, the task's mapped fields equal the document's latest values, no write of an
older version after a newer one, at most one create per document in the audit trail and an audit
entry for each, exactly one release per approved bill, one Acumatica grant for every worker (the
sandbox's tokens expire every few seconds, so workers renew together), no task failure, no
deadlock, serialization failure or "database is locked" anywhere, and each kill answered by a
respawned worker.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import time
import urllib.request
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from .deployment import Deployment, is_descendant
from .driver import CONTENTION
from .sandboxes import (
    CREATE_LEASE_SECONDS,
    PUSH_SECRET,
    VENDORS,
    D,
    F,
    Sandboxes,
    documents,
    expected_values,
    seed_documents,
    start_sandboxes,
    tenant_document,
)

ALICE = D["users"]["alice"]
APPROVED = D["options"]["approval_status"]["Approved"]


@dataclass(frozen=True)
class Variant:
    clusters: int
    workers: int  # per cluster
    bills: int
    purchase_orders: int
    kills: int  # worker processes SIGKILLed during the sync phase
    changes: int  # documents changed in Acumatica while the sync runs
    approvals: int
    timeout: float = 90.0  # the longest any one phase may take before the test fails


def process_title(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def scenario_seed() -> int:
    seed = int(os.environ.get("SCALE_SEED") or random.SystemRandom().randrange(1, 1 << 31))
    print(f"scale-out seed: {seed} (SCALE_SEED={seed} reproduces the choices)")
    return seed


class ScaleOut:
    def __init__(self, deployment: Deployment, sandboxes: Sandboxes, variant: Variant, rng: random.Random):
        self.dep, self.sb, self.v, self.rng = deployment, sandboxes, variant, rng
        self.killed: list[int] = []
        self.changed: set[tuple[str, str]] = set()
        self.approved: list[tuple[str, str]] = []
        self.info: dict[str, Any] = {}
        self.acumatica_settings: dict[str, Any] = {}  # changes to the tenant's Acumatica connection

    # ---- setup ---------------------------------------------------------------------------------
    def install(self) -> None:
        seed_documents(self.sb.acumatica, self.rng, self.v.bills, self.v.purchase_orders)
        self.dep.manage("migrate", "--noinput")
        self.dep.manage("createcachetable")
        config = self.dep.workdir / "tenant.json"
        document = tenant_document(self.sb)
        document["acumatica"].update(self.acumatica_settings)
        config.write_text(json.dumps(document))
        self.dep.manage("connector", "config", "apply", str(config))
        self.info = self.dep.driver("info")
        self.dep.budget_keys = tuple(self.info["budget_keys"])
        self.dep.forget_broker_keys()  # what an earlier run on this broker database may have left
        self.sb.acumatica.configure_push(
            f"{self.dep.web_url}/hooks/acumatica/{self.info['push_uuid']}/",
            self.info["push_header"],
            PUSH_SECRET,
        )
        self.dep.start_web()
        self.dep.start_clusters(self.v.clusters)

    # ---- helpers ---------------------------------------------------------------------------------
    def flow(self, kind: str) -> int:
        return self.info["flows"][kind]

    def wait(self, command: str, arg: dict[str, Any]) -> None:
        arg = {"timeout": self.v.timeout, **arg}
        answer = self.dep.driver(command, arg, timeout=arg["timeout"] + 30)
        if not answer.get("ok"):
            self.dep.dump_stacks()
            raise AssertionError(f"{command} {arg} did not finish: {answer}")

    def kill_a_worker(self) -> None:
        """SIGKILL one worker in the middle of a task.

        Only a busy worker, here (idle ones are killed in test_worker_kills.py: an idle worker holds
        the task queue's reader lock, which the guarded sentinel gives back). So the candidate is frozen
        (SIGSTOP), its process title read (django-q2 titles a worker "… processing <task>" while it
        runs one, via setproctitle), and it is killed only if it is running a task.
        """
        ours = [p.pid for name, p in self.dep.processes.items() if name.startswith("qcluster")]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            workers = [
                pid
                for cluster in self.dep.driver("clusters")
                for pid in cluster["workers"]
                if any(is_descendant(pid, root) for root in ours)
            ]
            for pid in self.rng.sample(sorted(workers), len(workers)):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGSTOP)
                    title = process_title(pid)
                    if " processing " in title:
                        os.kill(pid, signal.SIGKILL)
                        self.killed.append(pid)
                        print(f"SIGKILLed worker {pid} mid-task: {title.split(' processing ')[1][:100]}")
                        return
                    os.kill(pid, signal.SIGCONT)
            time.sleep(0.05)
        raise AssertionError("no worker of ours was busy to be killed")

    def change_documents(self, count: int) -> list[tuple[str, str]]:
        """People edit bills in Acumatica mid-run (each edit pushes a notification to the web process)."""
        acu = self.sb.acumatica
        bills = sorted(k for k in acu.records["Bill"] if k not in self.approved)
        picked = self.rng.sample(bills, min(count, len(bills)))
        for key in picked:
            record = acu.record("Bill", *key)
            due = record["DueDate"].date() + timedelta(days=self.rng.choice((1, 7, 10)))
            acu.update_record(
                "Bill",
                key,
                Amount=round(self.rng.uniform(100, 50_000), 2),
                Vendor=self.rng.choice(VENDORS),
                DueDate=datetime(due.year, due.month, due.day, tzinfo=record["DueDate"].tzinfo),
            )
            self.changed.add(key)
        return picked

    def process_twice(self, keys: list[tuple[str, str, str]]) -> list[list[Any]]:
        calls: list[list[Any]] = []
        for kind, doc_type, number in keys:
            flow = self.flow("acumatica_bills" if kind == "bill" else "acumatica_purchase_orders")
            calls += [["process_document", flow, doc_type, number]] * 2
        return calls

    def polls(self) -> list[list[Any]]:
        return [
            ["poll_flow", self.flow("acumatica_bills")],
            ["poll_flow", self.flow("acumatica_purchase_orders")],
        ]

    # ---- 1. sync with changes and kills ------------------------------------------------------------
    def sync(self) -> None:
        docs = sorted(documents(self.sb.acumatica))
        self.rng.shuffle(docs)
        total = len(docs)
        bills_pass = self.polls()[:1]
        head = max(1, total // 5)
        calls = self.process_twice(docs[:head]) + self.polls() + self.process_twice(docs[head:])
        self.dep.driver("enqueue", calls)
        kill_points = [total * (2 * n + 1) // (2 * self.v.kills + 1) for n in range(self.v.kills)]
        change_points = [total // 3, (2 * total) // 3]
        for at in sorted(set(kill_points + change_points)):
            self.wait("wait-links", {"at_least": at})
            if at in kill_points:
                self.kill_a_worker()
            if at in change_points:
                changed = self.change_documents(self.v.changes // 2)
                again = [("bill", t, n) for t, n in changed[: len(changed) // 2]]
                # the first wave also races a poll pass whose pages may hold the copies before the edit
                extra = bills_pass if at == change_points[0] else []
                self.dep.driver("enqueue", extra + self.process_twice(again))
        self.wait("wait-drained", {})

    # ---- 2. recover what the killed workers left -----------------------------------------------------
    def recover(self) -> None:
        """The scheduled poll, after the lease of any create a killed worker had claimed."""
        self.wait("wait-claims", {"lease": CREATE_LEASE_SECONDS + 1})
        self.dep.driver("enqueue", self.polls())
        self.wait("wait-drained", {})
        # A create whose worker was killed before Asana answered is made again only once Asana's search
        # index has settled (about 90 s after the claim: no duplicate from a task not yet searchable); the
        # pass schedules its own retry. Every document must end linked — by the product, not a deadline.
        self.wait("wait-links", {"at_least": len(documents(self.sb.acumatica)), "timeout": 240})
        self.wait("wait-drained", {})

    # ---- 3. approvals, delivered more than once ----------------------------------------------------
    def approve(self) -> None:
        asana, acu = self.sb.asana, self.sb.acumatica
        # the console's "Register webhooks": a worker registers, the web process answers the handshake
        self.dep.driver("enqueue", [["register_webhooks", self.info["tenant"]]])
        self.wait("wait-webhook", {})
        by_reference = self.tasks_by_reference()
        candidates = sorted(
            k
            for k, r in acu.records["Bill"].items()
            if k not in self.changed and r["Status"] in ("Balanced", "On Hold", "Pending Approval")
        )
        self.approved = self.rng.sample(candidates, min(self.v.approvals, len(candidates)))
        for doc_type, number in self.approved:
            (gid,) = by_reference[f"{doc_type}/{number}"]
            asana.ui_update_task(gid, ALICE, custom_fields={F["approval_status"]: APPROVED})
        already = len(asana.deliveries)
        delivered = asana.deliver_pending_events()
        assert delivered and all(200 <= status < 300 for _gid, status in delivered), delivered
        # Asana delivers at least once, the broker may run a task twice, the catch-up poll runs beside.
        self.dep.driver("enqueue", [["poll_approvals", self.info["tenant"]]])
        for webhook_gid, status, body in list(asana.deliveries[already:]):
            if webhook_gid != "handshake" and 200 <= status < 300:
                self.redeliver(webhook_gid, body)
        self.dep.driver("requeue-asana-events")
        self.wait("wait-released", {"at_least": len(self.approved)})
        self.wait("wait-drained", {})

    def redeliver(self, webhook_gid: str, body: bytes) -> None:
        webhook = self.sb.asana.webhooks[webhook_gid]
        request = urllib.request.Request(  # noqa: S310 - the deployment's loopback web process
            webhook["target"],
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "X-Hook-Signature": self.sb.asana._sign(webhook["secret"], body),
            },
        )
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
            assert answer.status == 200

    # ---- the invariants ------------------------------------------------------------------------------
    def tasks_by_reference(self) -> dict[str, list[str]]:
        asana = self.sb.asana
        found: dict[str, list[str]] = defaultdict(list)
        with asana.lock:
            for gid, task in asana.tasks.items():
                if D["ap_project"] in task["projects"]:
                    found[task["custom_values"].get(F["erp_reference"]) or ""].append(gid)
        return found

    def check(self) -> dict[str, Any]:
        report = self.dep.driver("report")
        docs = documents(self.sb.acumatica)
        tasks = self.tasks_by_reference()
        want = {f"{t}/{n}": (kind, t, n) for kind, t, n in docs}
        duplicates = {ref: gids for ref, gids in tasks.items() if len(gids) > 1}
        assert not duplicates, f"documents with more than one Asana task: {duplicates}"
        assert set(tasks) == set(want), (
            f"tasks without a document: {sorted(set(tasks) - set(want))[:10]}; "
            f"documents without a task: {sorted(set(want) - set(tasks))[:10]}"
        )
        links = {(link["kind"], link["type"], link["ref"]): link for link in report["links"]}
        assert len(links) == len(report["links"]), "two RecordLinks for one document"
        assert set(links) == set(docs), f"documents without a link: {sorted(set(docs) - set(links))[:10]}"
        unlinked = [link for link in links.values() if link["state"] != "linked"]
        assert not unlinked, f"documents not synced: {unlinked[:5]}"
        stale = []
        for (kind, doc_type, number), record in docs.items():
            link = links[(kind, doc_type, number)]
            assert tasks[f"{doc_type}/{number}"] == [link["gid"]], f"{doc_type}/{number}: link ≠ task"
            shown = self.sb.asana.task_values(link["gid"])
            wanted = expected_values(kind, record)
            if {k: shown.get(k) for k in wanted} != wanted:
                stale.append((f"{doc_type}/{number}", {k: shown.get(k) for k in wanted}, wanted))
        assert not stale, f"{len(stale)} task(s) do not show the document's latest values: {stale[:5]}"
        self.check_audit(report, links)
        self.check_releases(report, links)
        assert not report["task_failures"], f"tasks failed: {report['task_failures'][:5]}"
        assert not report["contention"], f"lock contention surfaced: {report['contention'][:5]}"
        logged = [
            line for line in self.dep.log_text().lower().splitlines() if any(c in line for c in CONTENTION)
        ]
        assert not logged, f"lock contention in the logs: {logged[:5]}"
        # every worker shares the connection's one OAuth grant (one API seat, one refresh chain)
        assert len(self.sb.acumatica.grants) == 1, f"{len(self.sb.acumatica.grants)} Acumatica grants"
        self.check_respawned()
        return report

    def check_respawned(self) -> None:
        """Each kill answered by a new worker: no killed pid left, every cluster at full strength.

        The cluster's status is what its sentinel last saved (each guard cycle), so it is read until
        it shows the respawns, for a bounded while.
        """
        deadline = time.monotonic() + 30
        while True:
            clusters = self.dep.driver("clusters")
            workers = [pid for c in clusters for pid in c["workers"]]
            respawned = (
                sum(c["reincarnations"] for c in clusters) >= len(self.killed)
                and not set(self.killed) & set(workers)
                and all(len(c["workers"]) == self.v.workers for c in clusters)
            )
            if respawned or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert respawned, f"killed {self.killed}, clusters now {clusters}"

    def check_audit(self, report: dict[str, Any], links: dict[tuple, dict[str, Any]]) -> None:
        silent = [key for key, link in links.items() if not link["audit"]]
        assert not silent, f"documents without an audit entry: {silent[:5]}"
        creates = Counter(w["key"] for w in report["writes"] if w["operation"] == "create_task")
        assert not [k for k, n in creates.items() if n > 1], f"created twice: {creates.most_common(3)}"
        newest: dict[str, str] = {}
        regressions = []
        for write in report["writes"]:  # in commit order (ids are taken under the document's lock)
            key, modified = write["key"], write["modified"] or ""
            if modified < newest.get(key, ""):
                regressions.append((key, f"wrote the version of {modified} after {newest[key]}"))
            newest[key] = max(modified, newest.get(key, ""))
        assert not regressions, f"an older version overwrote a newer one: {regressions[:5]}"

    def check_releases(self, report: dict[str, Any], links: dict[tuple, dict[str, Any]]) -> None:
        acu, asana = self.sb.acumatica, self.sb.asana
        with acu.lock:
            releases = Counter(op["bill"] for op in acu.operations.values())
        for key in self.approved:
            assert acu.record("Bill", *key)["Status"] == "Open", f"approved bill {key} was not released"
            assert releases[key] == 1, f"bill {key} released {releases[key]} times"
            link = links[("bill", *key)]
            assert link["released_at"], f"bill {key}: the link does not record the release"
            comments = asana.comments(link["gid"])  # comments only: every change leaves a story too
            assert len([text for text in comments if "Released" in text]) == 1, comments
        unexpected = set(releases) - set(self.approved)
        assert not unexpected, f"bills released without an approval: {unexpected}"
        assert len([r for r in report["releases"] if r["status"] == "succeeded"]) == len(self.approved)


def run(deployment: Deployment, variant: Variant) -> dict[str, Any]:
    """The whole scenario; prints the seed first and the processes' logs on any failure."""
    rng = random.Random(scenario_seed())
    sandboxes = start_sandboxes()
    proof = ScaleOut(deployment, sandboxes, variant, rng)
    deployment.database.create()
    started = time.monotonic()
    try:
        for phase in (proof.install, proof.sync, proof.recover, proof.approve):
            phase()
            print(f"  {phase.__name__}: done at {time.monotonic() - started:.1f}s")
        report = proof.check()
        print(
            f"scale-out: {len(report['links'])} documents, {len(proof.approved)} releases, "
            f"{len(proof.killed)} workers killed, {len(proof.changed)} changed, "
            f"{time.monotonic() - started:.0f}s; {report['evidence']}"
        )
        return report
    except BaseException:
        print(deployment.tails())
        raise
    finally:
        deployment.stop_all()
        deployment.forget_broker_keys()
        if not os.environ.get("SCALE_KEEP_DATABASE"):  # debugging: inspect it afterwards
            deployment.database.drop()
        sandboxes.close()


__all__ = ["Variant", "run"]
