"""Suite-wide settings: Hypothesis profiles.

`make test` (and so CI) uses the 'repeatable' profile: the same examples on every run, so a
landing never hangs on a newly drawn edge case. Plain `pytest` draws fresh examples each
run, which is how such edge cases are found; set HYPOTHESIS_PROFILE=repeatable to replay.
"""

import os

from hypothesis import settings

settings.register_profile('repeatable', derandomize=True, print_blob=True)
settings.load_profile(os.environ.get('HYPOTHESIS_PROFILE', 'default'))
