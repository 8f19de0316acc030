"""Error types of dfdnet_core.

Every error the package raises on purpose derives from :class:`DfdError`, so callers (and ROS nodes) can catch
one class, log it once and count it. Messages quote the offending value, what was expected, and the file or
topic involved.
"""


class DfdError(Exception):
    """Base class of every deliberate dfdnet error."""


class ConfigError(DfdError, ValueError):
    """A configuration value or file is invalid (unknown key, out-of-range value, wrong type)."""


class OpticsError(DfdError, ValueError):
    """An optical quantity is physically impossible (negative focal length, focus inside the focal length...)."""


class StackError(DfdError, ValueError):
    """A focal stack is malformed (sizes, encodings, focus distances, too few slices)."""


class DataError(DfdError):
    """A data set file is missing, truncated or not in the expected format."""


class CheckpointError(DfdError):
    """A model checkpoint cannot be loaded safely or does not match the model."""


class DriverError(DfdError):
    """A lens driver failed: no answer, bad checksum, out-of-range command."""


class DriverTimeoutError(DriverError):
    """A lens driver did not answer within its timeout."""
