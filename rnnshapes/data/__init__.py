"""Lesson data: the embedded hihell toy data, the names and Shakespeare data sets, batching helpers, and the
search (``RNNSHAPES_DATA``, the user cache, a verified download) that finds the data files.

Environment variables:

======================  ===========================================================================
``RNNSHAPES_DATA``      a folder holding the data files; searched first
``RNNSHAPES_CACHE``     the user cache folder (default ``$XDG_CACHE_HOME/rnnshapes`` or
                        ``~/.cache/rnnshapes``); searched second, downloads land here
``RNNSHAPES_DATA_URL``  base URL of the download (default: the course's GitHub repository)
``RNNSHAPES_OFFLINE``   ``1``/``true``/``yes``: never download
======================  ===========================================================================
"""

from ._hihell import HIHELL_IDX2CHAR as HIHELL_IDX2CHAR
from ._hihell import HIHELL_INPUT as HIHELL_INPUT
from ._hihell import HIHELL_TARGET as HIHELL_TARGET
from ._hihell import HiHell as HiHell
from ._hihell import hihell_data as hihell_data
from ._hihell import hihell_decode as hihell_decode
from ._hihell import hihell_encode as hihell_encode
from ._locate import DATA_FILES as DATA_FILES
from ._locate import DATA_URL as DATA_URL
from ._locate import cache_dir as cache_dir
from ._locate import data_search_dirs as data_search_dirs
from ._locate import data_url as data_url
from ._locate import download_data_file as download_data_file
from ._locate import file_sha256 as file_sha256
from ._locate import find_data_file as find_data_file
from ._locate import offline as offline
from ._locate import verify_data_file as verify_data_file
from ._names import COUNTRIES as COUNTRIES
from ._names import NAMES_FILES as NAMES_FILES
from ._names import NAMES_VOCAB_SIZE as NAMES_VOCAB_SIZE
from ._names import PAD_INDEX as PAD_INDEX
from ._names import NameBatch as NameBatch
from ._names import NameDataset as NameDataset
from ._names import collate_names as collate_names
from ._names import country_index as country_index
from ._names import decode_name as decode_name
from ._names import encode_name as encode_name
from ._names import encode_names as encode_names
from ._names import load_names as load_names
from ._names import normalize_name as normalize_name
from ._names import read_names_file as read_names_file
from ._text import SHAKESPEARE_FILE as SHAKESPEARE_FILE
from ._text import CharVocab as CharVocab
from ._text import load_shakespeare as load_shakespeare
from ._text import random_windows as random_windows
from ._text import shakespeare_lines as shakespeare_lines
from ._text import split_train_val as split_train_val
from ._text import teacher_forcing_pair as teacher_forcing_pair
from ._text import text_batches as text_batches

__all__ = [
    "COUNTRIES",
    "DATA_FILES",
    "DATA_URL",
    "HIHELL_IDX2CHAR",
    "HIHELL_INPUT",
    "HIHELL_TARGET",
    "NAMES_FILES",
    "NAMES_VOCAB_SIZE",
    "PAD_INDEX",
    "SHAKESPEARE_FILE",
    "CharVocab",
    "HiHell",
    "NameBatch",
    "NameDataset",
    "cache_dir",
    "collate_names",
    "country_index",
    "data_search_dirs",
    "data_url",
    "decode_name",
    "download_data_file",
    "encode_name",
    "encode_names",
    "file_sha256",
    "find_data_file",
    "hihell_data",
    "hihell_decode",
    "hihell_encode",
    "load_names",
    "load_shakespeare",
    "normalize_name",
    "offline",
    "random_windows",
    "read_names_file",
    "shakespeare_lines",
    "split_train_val",
    "teacher_forcing_pair",
    "text_batches",
]
