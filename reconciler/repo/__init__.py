"""Loading a map repo: :mod:`~reconciler.repo.loader` finds its files and keeps the models,
:mod:`~reconciler.repo.yamlparse` reads YAML with positions, :mod:`~reconciler.repo.forkparse`
parses many files in parallel, :mod:`~reconciler.repo.explain` turns a pydantic error into
a finding at its file and line."""
