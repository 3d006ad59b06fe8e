"""Who may do what: principals (a name, a role, the sites it is scoped to), the one decision table
``authorize(principal, action, site)``, API tokens (minted, hashed, expiring) and the rate limit on failed token
guesses.

The decision table is pure and carries the matrix tests; the token store is the one part here that touches the
database. The API's ``require_access`` (``edgefleet.cloud.api.deps``) is the shell that reads a bearer token and
asks these modules.
"""
