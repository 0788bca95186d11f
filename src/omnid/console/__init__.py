"""The web console: a page served by every worker at /console/ over the workers' JSON APIs, for
support agents (find a customer, see why, fix it) and operators (workers, lag, dead letters)."""
