"""The web console: a page served by every worker at /console/ over the workers' JSON APIs, for
support agents (find a customer, see why, fix it) and operators (workers, lag, dead letters).

May live here: the page, its static files and the server-side views over the workers' APIs
and the consumer group. May not: changes of its own: every fix goes through the operations and
privacy APIs, like any client's.
"""
