"""The private layers under :mod:`reconciler.gitsource`: running git, reading history,
watching a local repo. Import the public names from :mod:`reconciler.gitsource`."""
