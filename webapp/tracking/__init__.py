"""Public links in sent emails: open pixel, click redirect, one-click unsubscribe."""
