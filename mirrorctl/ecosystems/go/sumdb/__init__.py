"""The Go checksum database (sumdb): signed notes (note), the transparent log's hashing and tiles (tlog), and an
async client that checks a module's ``h1:`` lines against a signed tree head through the proxy (client).
"""
