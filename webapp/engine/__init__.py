"""The campaign engine: scheduling, rendering and mail transport. Never imports web/ or api/."""
