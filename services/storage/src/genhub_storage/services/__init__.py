"""Use cases: publish outputs, answer for files, take inputs in, keep the bucket tidy."""

from genhub_storage.services.files import FileQueries
from genhub_storage.services.inputs import InputPolicy, InputStore
from genhub_storage.services.lifecycle import Lifecycle, SweepReport
from genhub_storage.services.outputs import OutputPolicy, OutputProcessor, SpecRecorder

__all__ = [
    "FileQueries",
    "InputPolicy",
    "InputStore",
    "Lifecycle",
    "OutputPolicy",
    "OutputProcessor",
    "SpecRecorder",
    "SweepReport",
]
