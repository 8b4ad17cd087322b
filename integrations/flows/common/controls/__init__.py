"""Finance controls (issue 20), the pure rules shared by the documents and the approvals flows.

    config.py     the `options["controls"]` block of a documents flow: parsed, validated (errors name
                  the field), off by default
    rules.py      who may approve (segregation of duties), which tier and levels a bill falls into, the
                  state of the levels, is a bill a likely duplicate
    calendar.py   business days over a holiday calendar; which escalation thresholds an approval crossed

No I/O here: the effects live in the flows that own them (documents: duplicate hold and level subtasks
at create; approvals: SoD and levels before release; purchase_requests: SoD before the PO — the only
control a purchase-request flow applies; operations: the escalation sweep) and in common/control_effects.py
(level subtasks, the vendor class a tier depends on, a refused approval reset, the audit row).
"""
