"""Outside: what teams declare and what is fetched for them (profiles, lock, snapshot, fetch, init)."""
