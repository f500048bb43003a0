"""The accounts API, one module per topic:

auth     sign-up, sign-in and out, password change and reset
me       the caller's profile, preferences and security events
keys     API keys: create, rotate, revoke
users    users and roles (admins; operators read)
sharing  `{id}/shares` for the viewsets of shareable objects of every app
"""
