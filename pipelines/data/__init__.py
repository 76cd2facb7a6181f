"""Raw shop data: table schemas, the seeded generator and the import of users' own files."""
