"""The pure rules of the finance controls (integrations/flows/common/controls)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from integrations.flows.common.controls import calendar, config, rules

PM, CONTROLLER, CLERK, OTHER = "1001", "1002", "1003", "1004"

CONSTRUCTION = {
    "tiers": {
        "enabled": True,
        "tiers": [
            {"name": "small", "above": 0, "up_to": 5000, "levels": [{"name": "PM", "approvers": [PM]}]},
            {
                "name": "medium",
                "above": 5000,
                "up_to": 50000,
                "levels": [{"name": "PM", "approvers": [PM]}, {"name": "Second", "approvers": [OTHER]}],
            },
            {
                "name": "large",
                "above": 50000,
                "levels": [
                    {"name": "PM", "approvers": [PM]},
                    {"name": "Controller", "approvers": [CONTROLLER]},
                ],
            },
        ],
    }
}


def at(minute: int) -> datetime:
    return datetime(2026, 3, 2, 10, minute, tzinfo=UTC)


def test_off_by_default():
    c = config.controls_of({})
    assert not c.any_enabled
    assert rules.tier_for(c, 62000) is None
    assert rules.sod_problem(c.sod, CLERK, creators={CLERK}) is None


def test_a_62000_subcontractor_bill_needs_pm_and_controller():
    c = config.parse(CONSTRUCTION)
    tier = rules.tier_for(c, "62000.00")
    assert tier.name == "large" and [lv.name for lv in tier.levels] == ["PM", "Controller"]
    assert rules.tier_for(c, 5000).name == "small"  # ≤ 5,000
    assert rules.tier_for(c, Decimal("5000.01")).name == "medium"


def test_a_branch_tier_wins_over_the_general_one():
    raw = {
        "tiers": {
            "enabled": True,
            "tiers": [
                {"name": "all", "above": 0, "levels": [{"name": "PM", "approvers": [PM]}]},
                {
                    "name": "east",
                    "above": 0,
                    "branch": "EAST",
                    "levels": [{"name": "C", "approvers": [CONTROLLER]}],
                },
            ],
        }
    }
    assert config.validation_errors(raw) == []
    c = config.parse(raw)
    assert rules.tier_for(c, 10, branch="EAST").name == "east"
    assert rules.tier_for(c, 10, branch="MAIN").name == "all"


def test_validation_names_the_field():
    bad = {
        "tiers": {
            "enabled": True,
            "tiers": [
                {"name": "a", "above": 0, "up_to": 6000, "levels": [{"name": "PM", "approvers": [PM]}]},
                {"name": "b", "above": 5000, "levels": [{"name": "C"}]},
            ],
        },
        "segregation_of_duties": {"enabled": True, "allowed_approvers": ["999", "abc"]},
        "escalation": {"enabled": True, "recipients": ["not-an-address"], "holidays": ["2026-13-01"]},
        "typo": {},
    }
    errs = config.validation_errors(bad, known_users={PM, CONTROLLER})
    text = "\n".join(errs)
    assert "controls.tiers.tiers[1]: overlaps controls.tiers.tiers[0]" in text
    assert "controls.tiers.tiers[1].levels[0]: no approver" in text
    assert "controls.segregation_of_duties.allowed_approvers[0]: unknown Asana user 999" in text
    assert "controls.segregation_of_duties.allowed_approvers[1]: 'abc' is not an Asana GID" in text
    assert "controls.escalation.recipients[0]" in text and "controls.escalation.holidays[0]" in text
    assert "controls.typo: unknown control" in text
    assert config.validation_errors(CONSTRUCTION, known_users={PM, CONTROLLER, OTHER}) == []
    assert config.controls_of({"controls": bad}) is config.OFF  # an invalid block never half-applies


def test_sod_refuses_the_creator_and_outsiders():
    sod = config.parse({"segregation_of_duties": {"enabled": True, "allowed_approvers": [PM, CLERK]}}).sod
    allowed = rules.sod_allowed(sod)
    assert "entered this bill" in rules.sod_problem(sod, CLERK, creators={CLERK}, allowed=allowed)
    assert "not an allowed approver" in rules.sod_problem(sod, OTHER, creators={CLERK}, allowed=allowed)
    assert "requested this purchase" in rules.sod_problem(
        sod, PM, creators=set(), requester=PM, allowed=allowed
    )
    assert rules.sod_problem(sod, PM, creators={CLERK}, allowed=allowed) is None


def test_levels_need_every_approval_after_the_last_write_by_distinct_allowed_people():
    tier = rules.tier_for(config.parse(CONSTRUCTION), 62000)
    subs = [
        {
            "gid": "1",
            "name": rules.level_task_name(1, 2, tier.levels[0], "Bill 1"),
            "approval_status": "approved",
        },
        {
            "gid": "2",
            "name": rules.level_task_name(2, 2, tier.levels[1], "Bill 1"),
            "approval_status": "pending",
        },
    ]
    allowed = {1: {PM}, 2: {CONTROLLER}}
    states = rules.level_states(tier, subs, {"1": (at(5), PM)})
    assert rules.levels_problems(states, at(1), allowed=allowed, blocked=set()) == [
        (2, "level 2 (Controller) is pending")
    ]
    subs[1]["approval_status"] = "approved"
    states = rules.level_states(tier, subs, {"1": (at(5), PM), "2": (at(6), CONTROLLER)})
    assert rules.levels_problems(states, at(1), allowed=allowed, blocked=set()) == []
    # a guarded write after level 1's approval: level 1 no longer counts
    assert (
        "before the current values"
        in rules.levels_problems(states, at(5), allowed=allowed, blocked=set())[0][1]
    )
    states = rules.level_states(tier, subs, {"1": (at(5), PM), "2": (at(6), PM)})
    problems = rules.levels_problems(states, at(1), allowed={1: {PM}, 2: {PM, CONTROLLER}}, blocked=set())
    assert problems == [(2, "level 2 (Controller) was approved by the same person as level 1")]


def test_duplicates_by_vendor_reference_or_amount_in_the_window():
    bill = {
        "ReferenceNbr": "B2",
        "Vendor": "SUBCO",
        "VendorRef": "inv-77",
        "Amount": 62000,
        "Date": "2026-03-10",
    }
    others = [
        {"ReferenceNbr": "B1", "Vendor": "SUBCO", "VendorRef": "INV 77", "Amount": 1, "Date": "2025-01-01"},
        {"ReferenceNbr": "B3", "Vendor": "SUBCO", "VendorRef": "X", "Amount": 62000.0, "Date": "2026-02-20"},
        {"ReferenceNbr": "B4", "Vendor": "SUBCO", "VendorRef": "Y", "Amount": 62000.0, "Date": "2025-12-01"},
        {
            "ReferenceNbr": "B5",
            "Vendor": "OTHER",
            "VendorRef": "inv-77",
            "Amount": 62000.0,
            "Date": "2026-03-10",
        },
        {
            "ReferenceNbr": "B2",
            "Vendor": "SUBCO",
            "VendorRef": "inv-77",
            "Amount": 62000.0,
            "Date": "2026-03-10",
        },
        {"ReferenceNbr": "B6", "Vendor": "SUBCO", "VendorRef": "inv-77", "Status": "Voided"},
    ]
    found = rules.duplicate_matches(bill, others, window_days=30)
    assert [m.reference for m in found] == ["B1", "B3"]


def test_business_days_skip_weekends_and_the_holiday_calendar():
    fri, mon, wed = date(2026, 12, 18), date(2026, 12, 21), date(2026, 12, 23)
    assert calendar.business_days_between(fri, mon) == 1
    assert calendar.business_days_between(fri, wed) == 3
    assert calendar.business_days_between(fri, wed, {date(2026, 12, 22)}) == 2
    esc = config.parse(
        {
            "escalation": {
                "enabled": True,
                "pending_business_days": 3,
                "due_within_days": 2,
                "recipients": ["a@b.co"],
                "holidays": ["2026-12-22"],
            }
        }
    ).escalation
    assert calendar.crossed_thresholds(esc, pending_since=fri, today=wed) == []
    crossed = calendar.crossed_thresholds(
        esc, pending_since=fri, today=date(2026, 12, 24), discount_date=date(2026, 12, 26)
    )
    assert [t.key for t in crossed] == ["pending-3bd", "discount-2026-12-26"]
