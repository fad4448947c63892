"""WSGI entry point: `gunicorn wsgi:app`."""

import gc

from webapp import create_app

app = create_app()
# What the app built at start-up lives as long as the process: freezing it keeps it out of the
# garbage collector's full passes, which otherwise walk ~150,000 objects (tens of ms) every few
# requests that parse a large body (a 1,000-event webhook batch, a 10,000-contact enrollment).
gc.freeze()
