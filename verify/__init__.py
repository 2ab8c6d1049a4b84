"""``make verify``: a deployment proves itself, in under a minute.

It finds the stack (its name from ``samconfig.toml`` or ``STACK=``; ``LOCAL=1`` checks the local
stack that ``make run`` describes in ``.local/stack.json``), reads its parameters, outputs and
resources, and checks end to end what the stack promises: a token through the proxy and the
same token again from the cache; direct token requests to the pool refused (``Block``) or
counted (``Count``) by the web ACL's rule, by each credential method, while other grants are
left alone; the web ACL associated with the pool (this stack's, or with ``WebAcl=External``
the pool's own web ACL referencing the stack's rule group); the pattern set accepting the
current origin value and nothing but values of the origin secret; rotation enabled and not
stuck; the alarms present. It prints one line per check (pass, FAIL, or cannot be checked here
and why), never a secret, a token or an origin value, and exits 1 when any check fails.

The same code checks AWS and the local stack: locally moto answers the same AWS API calls and
the local issuer stands in for the pool's domain.
"""
