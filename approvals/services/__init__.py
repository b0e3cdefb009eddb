"""Writes of the approvals domain, one module per capability. Every surface (pages, API, tasks,
commands) calls these; reads live in `approvals.selectors`."""
