"""The operator console on top of the Django admin: dashboard, lineage, replay, dry run, progress.

permissions.py  the operator groups and the rules every console view checks
dashboard.py    health rules (pure, one per item) and the admin index context (few queries)
lineage.py      one record's timeline across inbound events, audit, API calls and operator actions
replay_admin.py the replay admin action with its diff / count confirmation page
views.py        dry run of a flow and the auto-refreshing progress page of a run
site.py         installs all of it on the admin site
"""
