"""Where this serving process stands in its life: serving, or draining before it stops.

`event-manager serve` (api.serving) sets `draining` on SIGTERM; /ready then answers 503, so that
load balancers stop sending new requests, while every route, /health included, still answers.
"""

draining = False


def begin_draining() -> None:
    global draining
    draining = True
