"""Numbers shared by the kernels, the distributions and the EM baselines, kept apart
so that none of them has to import another for a constant."""

import math

LOG_2PI = math.log(2 * math.pi)  # the normal density's log-normaliser per dimension
