"""A stateful Acumatica simulator behind the real URLs (Default endpoint, 20.200.001–24.200.001).

What it serves, relative to the instance URL it is built with (e.g. https://erp.sandbox.test/ERP):
    GET  /entity                                   build + endpoint list (anonymous)
    POST /identity/connect/token                   OAuth password / refresh_token grants; refresh
                                                   tokens rotate (the used one is revoked)
    POST /entity/auth/login | /entity/auth/logout  cookie sessions (ASP.NET_SessionId)
    GET|PUT /entity/Default/<v>/<Entity>           list ($filter $select $expand $top $skip) / upsert
    GET  /entity/Default/<v>/<Entity>/<keys|id>    by key (URL-encoded segments) or session id
    POST /entity/Default/<v>/Bill/ReleaseBill|Approve      actions; release answers 202 + Location
    GET  /entity/Default/<v>/Bill/<Action>/status/<guid>    202 × `release_polls`, then 204
Entities: Bill (+Details), PurchaseOrder (+Details), Employee (+ContactInfo), Vendor, Account.

Licence seats (`seat_limit`, §2.3): each password grant and each cookie login holds one; an extra one
gets the "API Login Limit" answer. Push notifications (§7.3) for Bill/PO changes are POSTed to
`configure_push(url, …)` through `self.deliver` with the shared-secret header, at least once, and twice
with `duplicate_probability` or `force_duplicate_next()`.

Bodies the vendor does not document precisely are marked UNVERIFIED (reference/acumatica.md) and
chosen to look like Acumatica's `HttpError`.
"""

from __future__ import annotations

import json
import random
import re
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, unquote

from .core import SimError, SimRequest, SimResponse, Simulator

BUILD_VERSION = "24.208.0012"
VERSIONS = ("20.200.001", "22.200.001", "23.200.001", "24.200.001")
ENTITY_KEYS = {
    "Bill": ("Type", "ReferenceNbr"),
    "PurchaseOrder": ("Type", "OrderNbr"),
    "Employee": ("EmployeeID",),
    "Vendor": ("VendorID",),
    "Account": ("AccountCD",),
}
DETAIL_FIELDS = {
    "Bill": ("Details",),
    "PurchaseOrder": ("Details",),
    "Employee": (),
    "Vendor": (),
    "Account": (),
}
LINKED_FIELDS = {"Employee": ("ContactInfo",)}
GUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
LOGIN_LIMIT_TEXT = "API Login Limit"
PUSH_QUERIES = {"Bill": "ML Connector: AP Bills", "PurchaseOrder": "ML Connector: Purchase Orders"}


def http_error(message: str, exc_type: str = "PX.Data.PXException", status: int = 500) -> SimError:
    return SimError(
        status,
        {
            "message": "An error has occurred.",
            "exceptionMessage": message,
            "exceptionType": exc_type,
            "stackTrace": "   at PX.Api.ContractBased...",
        },
    )


def no_entity() -> SimError:
    """GET by key of a missing record: HTTP 500, not 404 (reference §6.1, PC)."""
    return http_error(
        "No entity satisfies the condition.", "PX.Api.ContractBased.NoEntitySatisfiesTheConditionException"
    )


class AcumaticaSimulator(Simulator):
    name = "acumatica"
    contract = "acumatica"

    def __init__(
        self,
        base_url: str,
        *,
        strict_contract: bool = False,
        deliver=None,
        tenant: str = "Company",
        seat_limit: int = 2,
        token_lifetime: int = 3600,
        release_polls: int = 2,
        operation_seconds: float | None = None,
        seed: int = 0,
        clock: Callable[[], datetime] | None = None,
    ):
        super().__init__(base_url, strict_contract=strict_contract, deliver=deliver)
        self.tenant = tenant
        self.seat_limit = seat_limit
        self.token_lifetime = token_lifetime
        self.release_polls = release_polls
        # A long operation also finishes server-side this long after it started, polled or not (a
        # client that died mid-poll does not leave its session blocked forever). None: only polling.
        self.operation_seconds = operation_seconds
        self.random = random.Random(seed)
        self.clock = clock or (lambda: datetime.now(UTC))
        self.clients: dict[str, str] = {}
        self.users: dict[str, str] = {}
        self.access_tokens: dict[str, dict[str, Any]] = {}  # token -> {grant, expires_at}
        self.refresh_tokens: dict[str, str] = {}  # live refresh token -> grant id
        self.revoked_refresh_tokens: set[str] = set()
        self.grants: dict[str, str] = {}  # grant id -> user
        self.sessions: dict[str, str] = {}  # ASP.NET_SessionId -> user
        self.foreign_seats = 0
        self.records: dict[str, dict[tuple[str, ...], dict[str, Any]]] = {e: {} for e in ENTITY_KEYS}
        self.operations: dict[str, dict[str, Any]] = {}  # status guid -> pending long operation
        self.locks: dict[tuple[str, tuple[str, ...]], int] = {}
        self.requires_approval: set[tuple[str, str]] = set()
        self.push: dict[str, Any] | None = None
        self.push_log: list[dict[str, Any]] = []
        self._outbox: list[dict[str, Any]] = []
        self._force_duplicates = 0
        self._counters: dict[str, int] = {}
        self._last_modified = datetime(2000, 1, 1, tzinfo=UTC)
        self._routes()

    # ---- routes -------------------------------------------------------------------------------
    def _routes(self) -> None:
        ep = r"/entity/(?P<ep>[^/]+)/(?P<ver>[^/]+)"
        ent = r"(?P<entity>Bill|PurchaseOrder|Employee|Vendor|Account)"
        self.add_route("GET", r"/entity/?", self._list_endpoints)
        self.add_route("POST", r"/identity/connect/token", self._token)
        self.add_route("POST", r"/entity/auth/login", self._login)
        self.add_route("POST", r"/entity/auth/logout", self._logout)
        self.add_route(
            "GET", ep + r"/Bill/(?P<action>\w+)/status/(?P<sid>[0-9a-fA-F-]{36})", self._action_status
        )
        self.add_route("POST", ep + r"/Bill/(?P<action>ReleaseBill|Approve)", self._bill_action)
        self.add_route("POST", ep + r"/PurchaseOrder/(?P<action>Approve|Reject)", self._po_action)
        self.add_route("GET", ep + "/" + ent, self._list)
        self.add_route("PUT", ep + "/" + ent, self._put)
        self.add_route("GET", ep + "/" + ent + r"/(?P<keys>.+)", self._get)

    def handle(self, req: SimRequest) -> SimResponse:
        self.finish_due_operations()
        try:
            return super().handle(req)
        finally:
            if self._outbox and self.push and self.push.get("auto", True):
                self.flush_pushes()

    def fault_body(self, status: int) -> Any:
        if status == 429:
            # Plain text is what a 3P test observed (reference §6.3); do not assume JSON on 429.
            return "The custom error module does not recognize this error."
        if status in (502, 503, 504):
            return (
                f"<html><head><title>{status} Service Unavailable</title></head><body><h1>Service "
                "Unavailable</h1><p>The server is temporarily unable to service your request.</p>"
                "</body></html>"
            )
        if status == 401:
            return {"message": "You are not logged in."}
        return {
            "message": "An error has occurred.",
            "exceptionMessage": f"Injected fault {status}.",
            "exceptionType": "System.Exception",
        }

    def not_found_body(self, req: SimRequest) -> Any:
        return {"message": f"No HTTP resource was found that matches the request URI '{req.url}'."}

    # ---- seeding ------------------------------------------------------------------------------
    def add_oauth_client(self, client_id: str, secret: str) -> None:
        self.clients[client_id] = secret

    def add_user(self, name: str, password: str) -> None:
        self.users[name] = password

    def add_vendor(self, vendor_id: str, name: str, *, status: str = "Active", **fields: Any) -> dict:
        return self._store(
            "Vendor",
            {"VendorID": vendor_id, "VendorName": name, "Status": status, "CurrencyID": "USD", **fields},
            push=False,
        )

    def add_account(
        self,
        account_cd: str,
        description: str,
        *,
        type: str = "Expense",  # noqa: A002
        active: bool = True,
        **fields: Any,
    ) -> dict:
        n = self._next("account", 1000)
        return self._store(
            "Account",
            {
                "AccountCD": account_cd,
                "AccountID": n,
                "Description": description,
                "Type": type,
                "Active": active,
                **fields,
            },
            push=False,
        )

    def add_employee(
        self,
        employee_id: str,
        name: str,
        email: str | None,
        *,
        status: str = "Active",
        modified: datetime | None = None,
    ) -> dict:
        first, _, last = name.partition(" ")
        return self._store(
            "Employee",
            {
                "EmployeeID": employee_id,
                "EmployeeName": name,
                "Status": status,
                "ContactInfo": {"FirstName": first, "LastName": last, "Email": email},
            },
            modified=modified,
            push=False,
        )

    def add_bill(
        self,
        vendor: str,
        amount: float,
        *,
        type: str = "Bill",
        status: str = "Balanced",  # noqa: A002
        reference_nbr: str | None = None,
        vendor_ref: str | None = None,
        description: str = "",
        date_: date | None = None,
        due_date: date | None = None,
        details: list[dict] | None = None,
        requires_approval: bool = False,
        modified: datetime | None = None,
        branch: str = "MAIN",
        **fields: Any,
    ) -> dict:
        ref = reference_nbr or f"{self._next('Bill', 1):06d}"
        day = date_ or date(2026, 3, 2)
        lines = (
            details
            if details is not None
            else [
                {
                    "Account": "50100",
                    "Amount": amount,
                    "TransactionDescription": description or "Materials",
                    "Branch": branch,
                    "Qty": 1.0,
                    "UnitCost": amount,
                }
            ]
        )
        bill = {
            "Type": type,
            "ReferenceNbr": ref,
            "Status": status,
            "Hold": status == "On Hold",
            "Vendor": vendor,
            "VendorRef": vendor_ref,
            "Amount": amount,
            "Balance": amount,
            "Date": _dt(day),
            "DueDate": _dt(due_date or day + timedelta(days=30)),
            "Description": description,
            "BranchID": branch,
            "CurrencyID": "USD",
            "ApprovedForPayment": False,
            "PostPeriod": f"{day.month:02d}{day.year}",
            "Details": [dict(line) for line in lines],
            **fields,
        }
        if requires_approval or status == "Pending Approval":
            self.requires_approval.add((type, ref))
        return self._store("Bill", bill, modified=modified, push=False)

    def add_purchase_order(
        self,
        vendor_id: str,
        total: float,
        *,
        type: str = "Normal",  # noqa: A002
        status: str = "Open",
        order_nbr: str | None = None,
        description: str = "",
        details: list[dict] | None = None,
        modified: datetime | None = None,
        branch: str = "MAIN",
        **fields: Any,
    ) -> dict:
        nbr = order_nbr or f"PO{self._next('PurchaseOrder', 1):06d}"
        lines = (
            details
            if details is not None
            else [
                {
                    "LineNbr": 1,
                    "LineType": "Non-Stock",
                    "LineDescription": description or "Materials",
                    "OrderQty": 1.0,
                    "UnitCost": total,
                    "ExtendedCost": total,
                    "Account": "50100",
                    "BranchID": branch,
                }
            ]
        )
        po = {
            "Type": type,
            "OrderNbr": nbr,
            "Status": status,
            "Hold": status == "On Hold",
            "VendorID": vendor_id,
            "OrderTotal": total,
            "LineTotal": total,
            "Date": _dt(date(2026, 3, 1)),
            "Description": description,
            "Branch": branch,
            "CurrencyID": "USD",
            "Details": [dict(line) for line in lines],
            **fields,
        }
        if status == "Pending Approval" or fields.pop("requires_approval", False):
            self.requires_approval.add((type, nbr))
            po.pop("requires_approval", None)
        return self._store("PurchaseOrder", po, modified=modified, push=False)

    def record(self, entity: str, *keys: str) -> dict[str, Any] | None:
        """The stored record (plain values, not wrapped) or None."""
        return self.records[entity].get(tuple(keys))

    def update_record(self, entity: str, keys: tuple[str, ...], **changes: Any) -> dict:
        """Change a record as a user in the Acumatica UI would (bumps LastModifiedDateTime, pushes)."""
        with self.lock:
            rec = self.records[entity][tuple(keys)]
            before = dict(rec)
            rec.update(changes)
            self._touch(entity, rec, before)
        if self.push and self.push.get("auto", True):
            self.flush_pushes()
        return rec

    # ---- faults and controls ------------------------------------------------------------------
    def expire_access_tokens(self) -> None:
        for info in self.access_tokens.values():
            info["expires_at"] = self.clock() - timedelta(seconds=1)

    def grant_authorization_code(self, username: str) -> str:
        """What the authorization-code flow leaves the connector with: a refresh token (one seat)."""
        grant = uuid.uuid4().hex
        self.grants[grant] = username
        refresh = "rt_" + uuid.uuid4().hex
        self.refresh_tokens[refresh] = grant
        return refresh

    def occupy_seats(self, n: int) -> None:
        """Other integrations hold `n` API-user seats."""
        self.foreign_seats = n

    @property
    def seats_in_use(self) -> int:
        return len(self.grants) + len(self.sessions) + self.foreign_seats

    def lock_record(self, entity: str, keys: tuple[str, ...], times: int = 1) -> None:
        """The next `times` writes to this record fail with Acumatica's concurrency error."""
        self.locks[(entity, tuple(keys))] = times

    def configure_push(
        self,
        url: str,
        header_name: str,
        secret: str,
        *,
        duplicate_probability: float = 0.0,
        auto: bool = True,
        max_attempts: int = 5,
    ) -> None:
        self.push = {
            "url": url,
            "header": header_name,
            "secret": secret,
            "dup": duplicate_probability,
            "auto": auto,
            "max_attempts": max_attempts,
        }

    def force_duplicate_next(self, n: int = 1) -> None:
        self._force_duplicates += n

    # ---- instance-level endpoints -------------------------------------------------------------
    def _list_endpoints(self, req: SimRequest) -> SimResponse:
        return SimResponse.json(
            {
                "version": {"acumaticaBuildVersion": BUILD_VERSION, "databaseVersion": BUILD_VERSION},
                "endpoints": [
                    {"name": "Default", "version": v, "href": f"{self.base_path}/entity/Default/{v}/"}
                    for v in VERSIONS
                ],
            }
        )

    def _token(self, req: SimRequest) -> SimResponse:
        form = {k: v[0] for k, v in parse_qs(req.body.decode(), keep_blank_values=True).items()}
        client_id = form.get("client_id", "")
        if client_id not in self.clients or self.clients[client_id] != form.get("client_secret"):
            return _oauth_error("invalid_client")
        grant_type = form.get("grant_type")
        if grant_type == "password":
            if self.users.get(form.get("username", "")) != form.get("password") or not form.get("password"):
                return _oauth_error("invalid_grant", "invalid_username_or_password")
            if self.seats_in_use >= self.seat_limit:
                # UNVERIFIED status/shape; the docs only name the "API Login Limit" error (§2.1).
                return _oauth_error("invalid_grant", LOGIN_LIMIT_TEXT)
            grant = uuid.uuid4().hex
            self.grants[grant] = form["username"]
            scopes = set((form.get("scope") or "").split())
        elif grant_type == "refresh_token":
            token = form.get("refresh_token", "")
            grant = self.refresh_tokens.pop(token, None)
            if grant is None:
                return _oauth_error("invalid_grant", "invalid refresh token")
            self.revoked_refresh_tokens.add(token)
            scopes = {"api", "offline_access"}
        else:
            return _oauth_error("unsupported_grant_type")
        if "api" not in scopes:
            return SimResponse.json({"scope": " ".join(sorted(scopes)), "token_type": "Bearer"})
        access = "at_" + uuid.uuid4().hex
        self.access_tokens[access] = {
            "grant": grant,
            "expires_at": self.clock() + timedelta(seconds=self.token_lifetime),
        }
        body = {
            "access_token": access,
            "expires_in": self.token_lifetime,
            "token_type": "Bearer",
            "scope": " ".join(sorted(scopes)),
        }
        if "offline_access" in scopes:
            refresh = "rt_" + uuid.uuid4().hex
            self.refresh_tokens[refresh] = grant
            body["refresh_token"] = refresh
        return SimResponse.json(body)

    def _login(self, req: SimRequest) -> SimResponse:
        if "json" in (req.headers.get("Content-Type") or ""):
            creds = req.json()
        else:
            creds = {k: v[0] for k, v in parse_qs(req.body.decode()).items()}
        if creds.get("tenant") and creds.get("company"):
            raise http_error("Please use tenant", status=400)
        tenant = creds.get("tenant") or creds.get("company")
        if self.users.get(creds.get("name", "")) != creds.get("password") or (
            tenant and tenant != self.tenant
        ):
            # UNVERIFIED literal text; Acumatica reports bad credentials as a PXException.
            raise http_error("Invalid credentials. Please try again.", status=500)
        if self.seats_in_use >= self.seat_limit:
            # The login topic lists 429 for license limits; body text per the C# client (§6.3).
            return SimResponse(
                429,
                f"{LOGIN_LIMIT_TEXT}: the maximum number of API users is reached.".encode(),
                {"Content-Type": "text/plain"},
            )
        sid = uuid.uuid4().hex[:24]
        self.sessions[sid] = creds["name"]
        return SimResponse.empty(204, {"Set-Cookie": f"ASP.NET_SessionId={sid}; path=/; HttpOnly"})

    def _logout(self, req: SimRequest) -> SimResponse:
        sid = _cookie(req, "ASP.NET_SessionId")
        self.sessions.pop(sid or "", None)
        return SimResponse.empty(204)

    def _principal(self, req: SimRequest) -> str:
        """The session key of an authenticated request, else 401."""
        auth = req.headers.get("Authorization") or ""
        if auth.startswith("Bearer "):
            info = self.access_tokens.get(auth[7:])
            if info and info["expires_at"] > self.clock():
                return "grant:" + info["grant"]
            raise SimError(401, {"message": "You are not logged in."})
        sid = _cookie(req, "ASP.NET_SessionId")
        if sid and sid in self.sessions:
            return "session:" + sid
        raise SimError(401, {"message": "You are not logged in."})

    def _endpoint(self, req: SimRequest, ep: str, ver: str) -> str:
        principal = self._principal(req)
        if ep != "Default" or ver not in VERSIONS:
            # UNVERIFIED (reference §1.3): a wrong version most likely answers 404.
            raise SimError(404, self.not_found_body(req))
        for op in self.operations.values():
            if op["principal"] == principal and not op["done"]:
                raise http_error(
                    "A long operation is still running in this session; wait for it to complete."
                )
        return principal

    # ---- entities ----------------------------------------------------------------------------
    def _list(self, req: SimRequest, ep: str, ver: str, entity: str) -> SimResponse:
        self._endpoint(req, ep, ver)
        condition = parse_filter(req.arg("$filter")) if req.arg("$filter") else None
        skip, top = int(req.arg("$skip") or 0), req.arg("$top")
        rows = [r for r in self.records[entity].values() if condition is None or condition(r)]
        rows = rows[skip:] if top is None else rows[skip : skip + int(top)]
        return SimResponse.json([self._render(entity, r, req) for r in rows])

    def _get(self, req: SimRequest, ep: str, ver: str, entity: str, keys: str) -> SimResponse:
        self._endpoint(req, ep, ver)
        rec = self._find(entity, [unquote(k) for k in keys.split("/")])
        if rec is None:
            raise no_entity()
        return SimResponse.json(self._render(entity, rec, req))

    def _find(self, entity: str, keys: list[str]) -> dict | None:
        if len(keys) == 1 and GUID_RE.match(keys[0]):
            return next((r for r in self.records[entity].values() if r["id"] == keys[0]), None)
        return self.records[entity].get(tuple(keys))

    def _find_by_body(self, entity: str, body: dict) -> dict | None:
        if body.get("id"):
            return self._find(entity, [body["id"]])
        keys = [(body.get(k) or {}).get("value") for k in ENTITY_KEYS[entity]]
        return None if None in keys else self.records[entity].get(tuple(str(k) for k in keys))

    def _put(self, req: SimRequest, ep: str, ver: str, entity: str) -> SimResponse:
        self._endpoint(req, ep, ver)
        body = req.json()
        existing = self._find_by_body(entity, body)
        if existing is None and req.headers.get("If-Match") == "*":
            raise http_error("The entity does not exist and cannot be updated.", status=412)
        if existing is not None and req.headers.get("If-None-Match") == "*":
            raise http_error("An entity with these keys already exists and cannot be inserted.", status=412)
        if existing is not None:
            self._check_lock(entity, existing)
        plain = _plain(body)
        errors = self._validate(entity, body, plain)
        if errors:
            verb = "Updating" if existing else "Inserting"
            echo = dict(
                body,
                error=f"{verb}  '{_dac_title(entity)}' record raised at least one error. "
                "Please review the errors.",
            )
            return SimResponse.json(echo, 422)
        if existing is None:
            rec = self._create(entity, plain)
        else:
            before = dict(existing)
            self._apply(entity, existing, plain)
            self._touch(entity, existing, before)
            rec = existing
        return SimResponse.json(self._render(entity, rec, req))

    def _validate(self, entity: str, body: dict, plain: dict) -> bool:
        """Mark offending values with `error` in place (the 422 echo, §6.2); True if any."""
        bad = False

        def mark(obj: dict, name: str, message: str) -> None:
            nonlocal bad
            obj.setdefault(name, {})["error"] = message
            bad = True

        if entity == "Bill":
            if "Vendor" in plain and plain["Vendor"] not in {k[0] for k in self.records["Vendor"]}:
                mark(body, "Vendor", "'Vendor' cannot be found in the system.")
            if isinstance(plain.get("Amount"), int | float) and plain["Amount"] < 0:
                mark(body, "Amount", "'Amount' cannot be negative.")
            accounts = {k[0] for k in self.records["Account"]}
            for line, raw in zip(plain.get("Details") or [], body.get("Details") or [], strict=False):
                if line.get("Account") is not None and line["Account"] not in accounts:
                    mark(raw, "Account", f"Account '{line['Account']}' cannot be found in the system.")
                if isinstance(line.get("Amount"), int | float) and line["Amount"] < 0:
                    mark(raw, "Amount", "'Amount' cannot be negative.")
        return bad

    def _create(self, entity: str, plain: dict) -> dict:
        if entity == "Bill":
            plain.pop("ReferenceNbr", None)  # auto-numbered: a sent number "has no effect" (§3.1)
            details = plain.get("Details") or []
            amount = plain.get("Amount", sum(float(d.get("Amount") or 0) for d in details))
            status = "On Hold" if plain.get("Hold", True) else "Balanced"
            return self._store_new_bill(plain, amount, status)
        keys = ENTITY_KEYS[entity]
        if any(plain.get(k) is None for k in keys):
            raise http_error(f"'{keys[-1]}' cannot be empty.", status=400)
        return self._store(entity, plain)

    def _store_new_bill(self, plain: dict, amount: float, status: str) -> dict:
        fields = {k: v for k, v in plain.items() if k not in ("Amount", "Status", "Hold", "Type", "Vendor")}
        details = fields.pop("Details", None)
        bill = self.add_bill(
            plain.get("Vendor"),
            amount,
            type=plain.get("Type", "Bill"),
            status=status,
            details=details,
            **fields,
        )
        self._touch("Bill", bill, None)
        return bill

    def _apply(self, entity: str, rec: dict, plain: dict) -> None:
        for key, value in plain.items():
            if key in ENTITY_KEYS[entity] or key in ("Status", "id"):
                continue
            if key == "Details":
                rec["Details"] = list(rec.get("Details") or []) + [d for d in value if not d.get("id")]
            else:
                rec[key] = value
        if entity in ("Bill", "PurchaseOrder") and "Hold" in plain:
            if plain["Hold"]:
                rec["Status"] = "On Hold"
            elif rec["Status"] == "On Hold":
                ref = rec.get("ReferenceNbr") if entity == "Bill" else rec.get("OrderNbr")
                pending = (rec["Type"], ref) in self.requires_approval
                rec["Status"] = (
                    "Pending Approval" if pending else ("Balanced" if entity == "Bill" else "Open")
                )

    def _check_lock(self, entity: str, rec: dict) -> None:
        key = (entity, tuple(rec[k] for k in ENTITY_KEYS[entity]))
        if self.locks.get(key, 0) > 0:
            self.locks[key] -= 1
            raise http_error(
                f"Another process has updated the '{_dac_title(entity)}' record. Your changes will be lost.",
                "PX.Data.PXLockViolationException",
            )

    # ---- actions -----------------------------------------------------------------------------
    def _bill_action(self, req: SimRequest, ep: str, ver: str, action: str) -> SimResponse:
        principal = self._endpoint(req, ep, ver)
        invocation = req.json()
        bill = self._find_by_body("Bill", invocation.get("entity") or {})
        if bill is None:
            raise no_entity()
        self._check_lock("Bill", bill)
        if action == "Approve":
            if bill["Status"] != "Pending Approval":
                raise http_error(f"The document cannot be approved because its status is {bill['Status']}.")
            before = dict(bill)
            bill["Status"] = "Balanced"
            self._touch("Bill", bill, before)
            return SimResponse.empty(204, {"Location": self._self_link("Bill", bill)})
        if bill["Status"] not in ("Balanced", "Under Reclassification"):
            # UNVERIFIED body; release is allowed only from Balanced (AIR-UG AP_30_10_00, §3.1).
            raise http_error(
                f"The document cannot be released because its status is {bill['Status']}. "
                "Only documents with the Balanced status can be released."
            )
        sid = str(uuid.uuid4())
        self.operations[sid] = {
            "principal": principal,
            "remaining": self.release_polls,
            "done": False,
            "bill": (bill["Type"], bill["ReferenceNbr"]),
            "started": self.clock(),
        }
        return SimResponse.empty(
            202, {"Location": f"{self.base_url}/entity/{ep}/{ver}/Bill/{action}/status/{sid}"}
        )

    def _po_action(self, req: SimRequest, ep: str, ver: str, action: str) -> SimResponse:
        """PurchaseOrder Approve/Reject under approval maps: Pending Approval → Open / Rejected."""
        self._endpoint(req, ep, ver)
        po = self._find_by_body("PurchaseOrder", req.json().get("entity") or {})
        if po is None:
            raise no_entity()
        self._check_lock("PurchaseOrder", po)
        if po["Status"] != "Pending Approval":
            verb = "approved" if action == "Approve" else "rejected"
            raise http_error(f"The document cannot be {verb} because its status is {po['Status']}.")
        before = dict(po)
        po["Status"] = "Open" if action == "Approve" else "Rejected"
        self.requires_approval.discard((po["Type"], po["OrderNbr"]))
        self._touch("PurchaseOrder", po, before)
        return SimResponse.empty(204, {"Location": self._self_link("PurchaseOrder", po)})

    def _action_status(self, req: SimRequest, ep: str, ver: str, action: str, sid: str) -> SimResponse:
        self._principal(req)
        op = self.operations.get(sid)
        if op is None:
            raise http_error("The operation does not exist.", status=500)
        if op["done"]:
            return SimResponse.empty(204)
        if op["remaining"] > 0:
            op["remaining"] -= 1
            return SimResponse.empty(202, {"Location": req.url.split("?")[0]})
        bill = self._complete(op)
        return SimResponse.empty(204, {"Location": self._self_link("Bill", bill)})

    def _complete(self, op: dict[str, Any]) -> dict:
        bill = self.records["Bill"][op["bill"]]
        before = dict(bill)
        bill.update(Status="Open")
        self._touch("Bill", bill, before)
        op["done"] = True
        return bill

    def finish_due_operations(self) -> None:
        """Long operations running for `operation_seconds` finish server-side (see __init__)."""
        if self.operation_seconds is None:
            return
        with self.lock:
            due = self.clock() - timedelta(seconds=self.operation_seconds)
            for op in self.operations.values():
                if not op["done"] and op.get("started") and op["started"] <= due:
                    self._complete(op)

    # ---- storage, rendering, push --------------------------------------------------------------
    def _next(self, name: str, start: int) -> int:
        self._counters[name] = self._counters.get(name, start - 1) + 1
        return self._counters[name]

    def _store(
        self, entity: str, fields: dict, *, modified: datetime | None = None, push: bool = True
    ) -> dict:
        rec = {k: v for k, v in fields.items() if v is not None}
        rec["id"] = str(uuid.uuid4())
        for line in rec.get("Details") or []:
            line.setdefault("id", str(uuid.uuid4()))
        key = tuple(str(rec[k]) for k in ENTITY_KEYS[entity])
        self.records[entity][key] = rec
        self._touch(entity, rec, None, modified=modified, push=push)
        return rec

    def _touch(
        self,
        entity: str,
        rec: dict,
        before: dict | None,
        *,
        modified: datetime | None = None,
        push: bool = True,
    ) -> None:
        now = modified or max(self.clock(), self._last_modified + timedelta(milliseconds=1))
        self._last_modified = max(self._last_modified, now)
        rec["LastModifiedDateTime"] = now
        if push and entity in PUSH_QUERIES and self.push:
            self._queue_push(entity, rec, before)

    def _render(self, entity: str, rec: dict, req: SimRequest | None) -> dict:
        expand = set(filter(None, ((req.arg("$expand") if req else None) or "").split(",")))
        select = [s for s in ((req.arg("$select") if req else None) or "").split(",") if s]
        top_select = {s.split("/")[0] for s in select}
        out: dict[str, Any] = {"id": rec["id"], "rowNumber": 1, "custom": {}}
        for key, value in rec.items():
            if key == "id" or (select and key not in top_select):
                continue
            if key in DETAIL_FIELDS[entity] or key in LINKED_FIELDS.get(entity, ()):
                if key not in expand:
                    continue
                if isinstance(value, list):
                    out[key] = [dict(_wrap_fields(line), rowNumber=i + 1) for i, line in enumerate(value)]
                else:
                    nested = {s.split("/", 1)[1] for s in select if s.startswith(key + "/")}
                    out[key] = _wrap_fields({k: v for k, v in value.items() if not nested or k in nested})
            else:
                out[key] = _wrap_value(value)
        out["_links"] = {"self": self._self_link(entity, rec, relative=True)}
        return out

    def _self_link(self, entity: str, rec: dict, *, relative: bool = False) -> str:
        path = f"{self.base_path}/entity/Default/24.200.001/{entity}/{rec['id']}"
        return path if relative else self.base_url[: len(self.base_url) - len(self.base_path)] + path

    def _queue_push(self, entity: str, rec: dict, before: dict | None) -> None:
        self._outbox.append(
            {
                "Query": PUSH_QUERIES[entity],
                "CompanyId": self.tenant,
                "Inserted": [_gi_row(entity, rec)],
                "Deleted": [_gi_row(entity, before)] if before else [],
                "Id": str(uuid.uuid4()),
                "TimeStamp": _ticks(self.clock()),
                "AdditionalInfo": {},
            }
        )

    def flush_pushes(self) -> list[dict[str, Any]]:
        """Deliver queued push notifications (outside the state lock); returns what was sent."""
        with self.lock:
            batch, self._outbox = self._outbox, []
        if not self.push:
            return []
        for payload in batch:
            copies = 1
            if self._force_duplicates > 0:
                self._force_duplicates -= 1
                copies = 2
            elif self.random.random() < self.push["dup"]:
                copies = 2
            for _ in range(copies):
                self._deliver_one(payload)
        return batch

    def _deliver_one(self, payload: dict) -> None:
        body = json.dumps(payload).encode()
        headers = {"Content-Type": "application/json", self.push["header"]: self.push["secret"]}
        for attempt in range(1, self.push["max_attempts"] + 1):
            status, _h, _b = self.deliver(self.push["url"], headers, body)
            self.push_log.append({"payload": payload, "status": status, "attempt": attempt})
            if 200 <= status < 300:
                return


def build_demo(base_url: str, **kwargs: Any) -> AcumaticaSimulator:
    """A small construction firm: vendors, GL accounts, bills in every pre-release state, POs, staff.

    Credentials: OAuth client `DEMO_CLIENT_ID`/`DEMO_CLIENT_SECRET`, user `DEMO_USER`/`DEMO_PASSWORD`,
    tenant "Ridgeline".
    """
    sim = AcumaticaSimulator(base_url, tenant="Ridgeline", **kwargs)
    sim.add_oauth_client(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET)
    sim.add_user(DEMO_USER, DEMO_PASSWORD)
    for cd, desc, kind in (
        ("20000", "Accounts Payable", "Liability"),
        ("50100", "Materials", "Expense"),
        ("50200", "Subcontractors", "Expense"),
        ("51000", "Equipment Rental", "Expense"),
        ("60100", "Office Supplies", "Expense"),
    ):
        sim.add_account(cd, desc, type=kind)
    for vid, name in (
        ("ABCCONCRETE", "ABC Concrete Supply"),
        ("STEELWORKS", "Tri-County Steelworks"),
        ("RIVERLUMBER", "River Valley Lumber"),
        ("SUMMITELEC", "Summit Electrical Contractors"),
        ("HEAVYRENT", "Heavy Equipment Rentals Inc."),
    ):
        sim.add_vendor(vid, name)
    sim.add_bill("ABCCONCRETE", 18450.00, vendor_ref="INV-7781", description="Ready-mix concrete, Lot 14")
    sim.add_bill("STEELWORKS", 42300.50, vendor_ref="SW-2291", status="On Hold", description="Rebar package")
    sim.add_bill(
        "SUMMITELEC",
        12875.00,
        vendor_ref="SE-1043",
        status="Pending Approval",
        description="Rough-in electrical, Building B",
        details=[
            {"Account": "50200", "Amount": 12875.00, "TransactionDescription": "Rough-in", "Branch": "MAIN"}
        ],
    )
    sim.add_bill(
        "HEAVYRENT",
        3600.00,
        vendor_ref="HR-889",
        description="Excavator rental, March",
        details=[
            {"Account": "51000", "Amount": 3600.00, "TransactionDescription": "Excavator", "Branch": "MAIN"}
        ],
    )
    sim.add_bill(
        "RIVERLUMBER", 950.25, type="Credit Adj.", vendor_ref="RVL-CR-12", description="Returned studs"
    )
    sim.add_purchase_order("ABCCONCRETE", 25000.00, description="Foundation pour, Phase 2")
    sim.add_purchase_order("RIVERLUMBER", 8800.00, status="Pending Approval", description="Framing lumber")
    sim.add_purchase_order("STEELWORKS", 51000.00, status="On Hold", description="Structural steel")
    for eid, name, email, status in (
        ("EP00000001", "Maria Lopez", "maria.lopez@ridgeline.example", "Active"),
        ("EP00000002", "Dave Chen", "dave.chen@ridgeline.example", "Active"),
        ("EP00000003", "Priya Natarajan", "Priya.Natarajan@ridgeline.example", "Active"),
        ("EP00000004", "Tom Becker", "tom.becker@ridgeline.example", "Inactive"),
        ("EP00000005", "Site Trailer", None, "Active"),
    ):
        sim.add_employee(eid, name, email, status=status)
    return sim


DEMO_CLIENT_ID = "3F2A7C1E-5B8D-4E6F-9A0B-1C2D3E4F5A6B@Ridgeline"
DEMO_CLIENT_SECRET = "demo-client-secret-ridgeline"
DEMO_USER = "connector"
DEMO_PASSWORD = "demo-password-ridgeline"


# ---- helpers ------------------------------------------------------------------------------------


def _oauth_error(code: str, description: str = "") -> SimResponse:
    body = {"error": code}
    if description:
        body["error_description"] = description
    return SimResponse.json(body, 400)


def _cookie(req: SimRequest, name: str) -> str | None:
    for part in (req.headers.get("Cookie") or "").split(";"):
        k, _, v = part.strip().partition("=")
        if k == name:
            return v
    return None


def _dt(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _wrap_value(value: Any) -> Any:
    if value is None:
        return {}
    if isinstance(value, datetime):
        return {"value": value.isoformat(timespec="milliseconds")}
    return {"value": value}


def _wrap_fields(fields: dict) -> dict:
    return {k: (v if k == "id" else _wrap_value(v)) for k, v in fields.items()}


def _plain(body: dict) -> dict:
    """A request entity without wrappers (sandbox-side; independent of the client's values.py)."""
    out: dict[str, Any] = {}
    for key, value in body.items():
        if key in ("custom", "rowNumber", "note", "_links", "error"):
            continue
        if key == "id":
            out[key] = value
        elif isinstance(value, list):
            out[key] = [_plain(v) for v in value]
        elif isinstance(value, dict) and set(value) <= {"value", "error"}:
            out[key] = _parse_value(value.get("value"))
        elif isinstance(value, dict):
            out[key] = _plain(value)
    return out


def _parse_value(value: Any) -> Any:
    if isinstance(value, str) and re.match(r"^\d{4}-\d{2}-\d{2}T", value):
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return value


def _dac_title(entity: str) -> str:
    return {"Bill": "AP Transactions", "PurchaseOrder": "Purchase Order"}.get(entity, entity)


def _ticks(moment: datetime) -> int:
    return int((moment - datetime(1, 1, 1, tzinfo=UTC)).total_seconds() * 10_000_000)


def _gi_row(entity: str, rec: dict) -> dict[str, Any]:
    """A flat Generic Inquiry row (not value-wrapped), columns as suggested in reference §7.5."""
    modified = rec.get("LastModifiedDateTime")
    stamp = modified.isoformat(timespec="milliseconds").replace("+00:00", "") if modified else None
    if entity == "Bill":
        return {
            "DocType": rec["Type"],
            "RefNbr": rec["ReferenceNbr"],
            "Status": rec.get("Status"),
            "Hold": rec.get("Hold"),
            "VendorID": rec.get("Vendor"),
            "CuryOrigDocAmt": rec.get("Amount"),
            "DueDate": rec["DueDate"].isoformat() if rec.get("DueDate") else None,
            "APInvoice_lastModifiedDateTime": stamp,
        }
    return {
        "OrderType": rec["Type"],
        "OrderNbr": rec["OrderNbr"],
        "Status": rec.get("Status"),
        "Hold": rec.get("Hold"),
        "VendorID": rec.get("VendorID"),
        "CuryOrderTotal": rec.get("OrderTotal"),
        "POOrder_lastModifiedDateTime": stamp,
    }


# ---- $filter (OData v3 subset: eq ne gt ge lt le, and/or, parentheses) -----------------------------

_TOKEN_RE = re.compile(
    r"\s*(?:(?P<lit>(?:datetimeoffset|datetime|date|guid)?'(?:[^']|'')*')|(?P<num>-?\d+(?:\.\d+)?)"
    r"|(?P<paren>[()])|(?P<word>[A-Za-z_][\w/.]*))"
)


def parse_filter(text: str) -> Callable[[dict], bool]:
    tokens = []
    pos = 0
    while pos < len(text.rstrip()):
        m = _TOKEN_RE.match(text, pos)
        if not m or m.end() == pos:
            raise http_error(f"Invalid $filter near '{text[pos : pos + 20]}'.", "PX.Api.ODataParserException")
        tokens.append(m)
        pos = m.end()
    expr, rest = _parse_or(tokens)
    if rest:
        raise http_error("Invalid $filter: unexpected trailing tokens.", "PX.Api.ODataParserException")
    return expr


def _parse_or(tokens):
    left, tokens = _parse_and(tokens)
    while tokens and tokens[0].group("word") == "or":
        right, tokens = _parse_and(tokens[1:])
        left = (lambda a, b: lambda r: a(r) or b(r))(left, right)
    return left, tokens


def _parse_and(tokens):
    left, tokens = _parse_atom(tokens)
    while tokens and tokens[0].group("word") == "and":
        right, tokens = _parse_atom(tokens[1:])
        left = (lambda a, b: lambda r: a(r) and b(r))(left, right)
    return left, tokens


_OPS = {
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "gt": lambda a, b: a is not None and a > b,
    "ge": lambda a, b: a is not None and a >= b,
    "lt": lambda a, b: a is not None and a < b,
    "le": lambda a, b: a is not None and a <= b,
}


def _parse_atom(tokens):
    if tokens and tokens[0].group("paren") == "(":
        expr, tokens = _parse_or(tokens[1:])
        if not tokens or tokens[0].group("paren") != ")":
            raise http_error("Invalid $filter: missing ')'.", "PX.Api.ODataParserException")
        return expr, tokens[1:]
    if len(tokens) < 3 or not tokens[0].group("word") or tokens[1].group("word") not in _OPS:
        raise http_error("Invalid $filter: expected '<Field> <op> <literal>'.", "PX.Api.ODataParserException")
    path, op, value = tokens[0].group("word").split("/"), _OPS[tokens[1].group("word")], _literal(tokens[2])

    def test(rec: dict) -> bool:
        cur: Any = rec
        for part in path:
            cur = cur.get(part) if isinstance(cur, dict) else None
        try:
            return op(cur, value)
        except TypeError:
            return False

    return test, tokens[3:]


def _literal(tok) -> Any:
    if tok.group("num"):
        return float(tok.group("num"))
    word = tok.group("word")
    if word in ("true", "false"):
        return word == "true"
    if word == "null":
        return None
    lit = tok.group("lit")
    if not lit:
        raise http_error("Invalid $filter literal.", "PX.Api.ODataParserException")
    prefix, _, quoted = lit.partition("'")
    text = quoted[:-1].replace("''", "'")
    if prefix == "datetimeoffset" or prefix == "datetime":
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    if prefix == "date":
        return _dt(date.fromisoformat(text))
    return text
