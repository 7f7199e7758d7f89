"""Shapes of identifiers apps choose: end-user ids and app slugs."""

import re

USER_ID_PATTERN = r"^[A-Za-z0-9._:@-]{1,128}$"
SLUG_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$"

_USER_ID = re.compile(USER_ID_PATTERN)


def is_valid_user_id(value: str) -> bool:
    # "." and ".." match the pattern but are path segments URLs collapse; refuse them.
    return bool(_USER_ID.fullmatch(value)) and value not in {".", ".."}
