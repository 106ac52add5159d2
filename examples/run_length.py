def run_length_encode(text: str) -> list[tuple[str, int]]:
    """Encode a string by runs: each maximal run of one repeated character becomes a pair
    (the character, the run's length), in the order the runs appear. An empty string has no runs.
    """
