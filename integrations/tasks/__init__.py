"""django-q2 entry points, one module per area (e.g. tasks/documents.py, tasks/approvals.py).

Tasks are thin module functions that take ids (never model instances), load rows and call into
integrations/flows/. They raise only retryable errors; permanent ones are written to the audit trail.
"""
