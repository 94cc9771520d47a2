"""Format readers: each turns one kind of file into ``SlideParts``."""
