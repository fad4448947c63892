"""Use cases. Each public function is one transaction: it validates, mutates and commits,
or raises a domain error from webapp.errors and leaves nothing behind."""
