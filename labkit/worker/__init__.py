"""Worker processes that run student code inside a box, apart from the judge."""
