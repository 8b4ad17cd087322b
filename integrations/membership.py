"""Who may work on which tenant: a user is granted tenants, each with one role.

    view        read the tenant's rows in the console (lists, lineage, runs, audit, events)
    audit       view + export auditor evidence (and verify an export); never replays, syncs or edits
    operate     view + sync, replay, dry run, test connections, resolve alerts
    administer  operate + edit connections, flows, webhooks and mappings

Superusers see and do everything without memberships. A staff user without a membership sees no
tenant at all (the console's lists are empty and every tenant object answers 404). The roles are
ordered: a check for `operate` passes for `administer`. Scoping itself lives in
integrations/console/tenancy.py.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Role(models.TextChoices):
    VIEW = "view", "View"
    AUDIT = "audit", "Audit (view + export evidence; never acts)"
    OPERATE = "operate", "Operate (sync, replay, dry run)"
    ADMINISTER = "administer", "Administer (connections and mappings)"


# An auditor ranks with a viewer: every page a viewer reads, no action. What sets the role apart is one
# capability outside the ladder, exporting evidence (EVIDENCE_ROLES).
RANK = {Role.VIEW: 1, Role.AUDIT: 1, Role.OPERATE: 2, Role.ADMINISTER: 3}
EVIDENCE_ROLES = frozenset({Role.AUDIT, Role.ADMINISTER})


def at_least(role: str | None, wanted: str) -> bool:
    return role is not None and RANK.get(role, 0) >= RANK[wanted]


class TenantMembership(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    tenant = models.ForeignKey("integrations.Tenant", on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=12, choices=Role.choices, default=Role.VIEW)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["tenant", "user"]
        constraints = [
            models.UniqueConstraint(fields=["user", "tenant"], name="membership_unique_user_tenant")
        ]

    def __str__(self) -> str:
        return f"{self.user} · {self.tenant.slug} · {self.role}"
