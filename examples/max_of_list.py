def max_of_list(numbers: list[int]) -> int:
    """Return the largest number in a non-empty list of integers.

    >>> max_of_list([3, 1, 4, 1, 5])
    5
    >>> max_of_list([-7, -2, -9])
    -2
    """
