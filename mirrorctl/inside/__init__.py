"""Inside: what the closed network holds and serves (store and views, channels, serve, publish, audit,
verify, gc, workspace config)."""
