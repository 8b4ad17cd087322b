"""django-q2 entry points. Thin: they take ids, load rows and call into flows/."""
