"""The documentation site's generated reference pages, made when ``mkdocs build`` runs (``hooks.py``).

The spec reference comes from the JSON Schema the tool validates with, the command reference from the tasks'
parameters, and the workflow reference from the workflow files: a page can never say what the code does not.
Nothing here runs when the tool builds images; ``hooks.py`` alone imports MkDocs.
"""
