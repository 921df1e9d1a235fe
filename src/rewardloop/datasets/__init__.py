"""Real data sets that install offline (see shared DATA.md): fetched once by ``rewardloop data fetch``.

Each loader lives in its own module and reads from :func:`data_dir`.
"""

from rewardloop.datasets.fetch import DataMissingError, data_dir, fetch_all

__all__ = ["DataMissingError", "data_dir", "fetch_all"]
