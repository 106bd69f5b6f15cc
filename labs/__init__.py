"""The book's autograded labs: teacher notebooks (otter-grader format) and ``python -m labs.grade``."""
