"""Asset sources: Objaverse 1.0, Objaverse-XL and a local folder, each yielding SourceRecords.

Every source has ``records()`` (annotation-level, cheap, ``local_path`` set when the file is
already cached), ``fetch_many(records)`` / ``fetch(record)`` (make the file local and check
it), and ``missing`` (one line per thing an offline cache lacked).
"""

from d4d.curation.sources.base import (
    ASSET_EXTENSIONS,
    PROBLEMS,
    ChecksumMismatch,
    FetchError,
    InvalidAsset,
    MissingFromCache,
    RecordProblem,
    SourceRecord,
    sha256_file,
    verify_asset_file,
)
from d4d.curation.sources.download import DownloadLimits, DownloadTimeout, DownloadTooLarge, HTTPRefused, download, download_with_links
from d4d.curation.sources.ids import IdIndex, identifier_kind, load_id_list, save_uid
from d4d.curation.sources.local import LocalFolderSource
from d4d.curation.sources.objaverse_v1 import ObjaverseV1Source, V1Filter
from d4d.curation.sources.objaverse_xl import ObjaverseXLSource, XLEndpoints, XLFilter

__all__ = [
    "ASSET_EXTENSIONS",
    "PROBLEMS",
    "RecordProblem",
    "SourceRecord",
    "ChecksumMismatch",
    "DownloadLimits",
    "DownloadTimeout",
    "DownloadTooLarge",
    "HTTPRefused",
    "download_with_links",
    "XLEndpoints",
    "download",
    "FetchError",
    "IdIndex",
    "InvalidAsset",
    "LocalFolderSource",
    "MissingFromCache",
    "ObjaverseV1Source",
    "ObjaverseXLSource",
    "V1Filter",
    "XLFilter",
    "identifier_kind",
    "load_id_list",
    "save_uid",
    "sha256_file",
    "verify_asset_file",
]
