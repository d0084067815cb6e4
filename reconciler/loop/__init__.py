"""The reconcile loop: :mod:`~reconciler.loop.reconciler` applies revisions and runs the
checks that :mod:`~reconciler.loop.scheduler` and :mod:`~reconciler.loop.targets` plan;
:mod:`~reconciler.loop.checkstate` keeps soft and hard states, :mod:`~reconciler.loop.rows`
turns them into the store's rows, :mod:`~reconciler.loop.view` and
:mod:`~reconciler.loop.metrics` report them."""
