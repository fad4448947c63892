"""The send pipeline, one module per stage. Claim, then send, then record: never lock, send, commit.

- `settings`: a campaign's effective settings (workspace defaults < template < campaign) and its sender.
- `claim`: pick due enrollments, ask the send policy (`engine/policy.py`) whether each may go
  now, and lease a `deliveries` row for each message that may (LinkedIn steps become tasks).
- `compose`: render and build each claimed message; the same composer renders the dashboard's
  previews and the LinkedIn task messages.
- `record`: hand each message to the transport, marked `sending` just before, then record the
  outcomes (an `Outcome`) in groups: the sent event, the enrollment moved on, retries, failures.
- `deliveries`: leases that ran out, claims handed back, and `unknown` deliveries a person resolves.

A delivery's life: claimed (leased, not yet tried) -> sending (its SMTP transaction is about to
start) -> sent, retry, failed or unknown. A crash leaves `claimed` rows, which go back to the
queue when their lease ends, and at most the one `sending` message per worker, which becomes
`unknown`: it may or may not have left, so a person says which, and it is never resent blindly.
"""
