"""Browser pages of workflows, one module per topic; thin: each page calls the workflows' selectors and
services, and writes need the same role permissions as the API's.

workflows  your workflows (the editor, import, examples) and one workflow: its diagram, runs, versions and their
           diff, sharing, schedules, the inbound webhook
runs       a run, drawn live; cancelling and re-running it
approvals  the approvals you may decide, and the signed links that decide one without signing in
diagram    what the diagram template draws, shared with the admin's pages
"""
