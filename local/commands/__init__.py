"""The developer commands run against the local stack: ``invoke`` (a handler with an event
file), ``rotate`` (a full rotation, or the prune event) and ``invalidate`` (a client's cached
tokens). ``make run`` (:mod:`local.stack`) starts the stack they talk to."""
