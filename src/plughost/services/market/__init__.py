"""The marketplace: a TUF-secured plugin repository (publisher side), the client that reads
one or several of them, and the install, update and search flows built on both."""
