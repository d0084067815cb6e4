"""Following a branch: :mod:`reconciler.git.mirror` (fetch, validate, attribute a merge) on
the layers under it: running git, reading history and trees, watching a local repo,
attributing a change to a person. Import the public names from :mod:`reconciler.git.mirror`."""
