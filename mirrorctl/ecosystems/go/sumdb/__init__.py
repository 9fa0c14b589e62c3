"""The Go checksum database (sumdb): signed notes (note), the transparent log's hashing, tiles and proofs (tlog),
an async client that checks a module's ``h1:`` lines against a signed tree head through the proxy and says what
a lock must carry (client), and the inside's answers made from that carried data alone (passthrough).
"""
