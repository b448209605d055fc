"""The readiness report: its model (model.py), rendered for a terminal or as JSON
(text.py), as a page (html.py), and the `check` command that runs it (command.py)."""
