"""Who may do what: :mod:`~reconciler.policy.engine` decides (and explains) a person's rights
on a component, :mod:`~reconciler.policy.judge` judges a request against them."""
